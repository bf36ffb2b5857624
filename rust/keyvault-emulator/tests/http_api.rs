//! The emulator's REST contract, checked with a plain HTTPS client that trusts only its CA.

mod common;

use common::Emulator;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const VALUE: &str = "s3cret-value-never-logged";

#[test]
fn challenge_token_set_get_and_a_clean_log() {
    let emu = Emulator::start(&[]);
    let probe = emu
        .http
        .get(emu.url("/secrets/db?api-version=7.6"))
        .send()
        .unwrap();
    assert_eq!(probe.status(), 401);
    let challenge = probe.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        challenge,
        format!(
            "Bearer authorization=\"{}/{}\", resource=\"https://vault.azure.net\"",
            emu.ready["authority_host"].as_str().unwrap(),
            emu.ready["tenant_id"].as_str().unwrap()
        )
    );
    assert!(probe.headers().contains_key("x-ms-request-id"));

    let wrong = emu
        .http
        .post(emu.url(&format!(
            "/{}/oauth2/v2.0/token",
            emu.ready["tenant_id"].as_str().unwrap()
        )))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_id",
                emu.principal("officer")["client_id"].as_str().unwrap(),
            ),
            ("client_secret", "wrong"),
            ("scope", "https://vault.azure.net/.default"),
        ])
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let err: Value = wrong.json().unwrap();
    assert!(err["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215: "));
    assert_eq!(err["error_codes"], json!([7000215]));

    let token = emu.token("officer");
    let set: Value = emu
        .http
        .put(emu.url("/secrets/db?api-version=7.6"))
        .bearer_auth(&token)
        .header("x-ms-client-request-id", "req-1")
        .json(&json!({"value": VALUE, "contentType": "text/plain", "tags": {"ref": "r"}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = set["id"].as_str().unwrap();
    let version = id.rsplit('/').next().unwrap();
    assert_eq!(version.len(), 32);
    assert_eq!(set["attributes"]["recoveryLevel"], "Recoverable+Purgeable");
    assert!(set["attributes"]["created"].is_i64());

    let get = emu
        .http
        .get(emu.url("/secrets/db/?api-version=7.6"))
        .bearer_auth(&token)
        .header("x-ms-client-request-id", "req-2")
        .send()
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["x-ms-client-request-id"], "req-2");
    let got: Value = get.json().unwrap();
    assert_eq!(got["value"], VALUE);
    assert_eq!(got["tags"], json!({"ref": "r"}));

    let bad = emu
        .http
        .get(emu.url("/secrets/db"))
        .bearer_auth("a.b.c")
        .send()
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(bad.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));

    let log = emu.log();
    assert_eq!(log.lines().count(), 6);
    assert!(!log.contains(VALUE));
    assert!(!log.contains(&token));
    assert!(!log.contains(emu.principal("officer")["client_secret"].as_str().unwrap()));
    let last: Value = serde_json::from_str(log.lines().nth(4).unwrap()).unwrap();
    assert_eq!(last["client_request_id"], "req-2");
    assert_eq!(last["principal"], emu.principal("officer")["client_id"]);
    assert_eq!(last["target"], "vault");
}

#[test]
fn paging_follows_absolute_next_links() {
    let emu = Emulator::start(&[]);
    let token = emu.token("officer");
    for i in 0..7 {
        let r = emu
            .http
            .put(emu.url(&format!("/secrets/s{i}?api-version=7.6")))
            .bearer_auth(&token)
            .json(&json!({"value": "x"}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let mut url = emu.url("/secrets?api-version=7.6&maxresults=3");
    let mut sizes = Vec::new();
    loop {
        let page: Value = emu
            .http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let items = page["value"].as_array().unwrap();
        assert!(items.iter().all(|i| i.get("value").is_none()));
        sizes.push(items.len());
        match page["nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(emu.ready["authority_host"].as_str().unwrap()));
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
}

#[test]
fn reader_gets_rbac_403_on_set() {
    let emu = Emulator::start(&[]);
    let r = emu
        .http
        .put(emu.url("/secrets/x?api-version=7.6"))
        .bearer_auth(emu.token("reader"))
        .json(&json!({"value": "v"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'"),
        "{msg}"
    );
}

#[test]
fn throttling_fault_answers_429_with_retry_after_once() {
    let fault = r#"{"target":"vault","kind":"status","status":429,"retry_after":2,"count":1}"#;
    let emu = Emulator::start(&["--fault", fault]);
    let token = emu.token("officer");
    let r = emu
        .http
        .get(emu.url("/secrets"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "Throttled");
    let r = emu
        .http
        .get(emu.url("/secrets"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let state: Value = emu
        .http
        .get(emu.url("/_emulator/state"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(state["faults"][0]["remaining"], 0);
    assert_eq!(state["faults"][0]["hits"], 1);
}

#[test]
fn refuse_fault_fails_connections_fast_and_sigterm_exits_cleanly() {
    let mut emu = Emulator::start(&[]);
    let set = emu
        .http
        .post(emu.url("/_emulator/faults"))
        .json(&json!([{"target": "all", "kind": "refuse", "count": 1}]))
        .send()
        .unwrap();
    assert_eq!(set.status(), 200);
    let start = Instant::now();
    let err = emu.http.get(emu.url("/secrets")).send().unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(
        emu.http.get(emu.url("/secrets")).send().unwrap().status(),
        401
    );
    assert!(emu.terminate().success());
}

fn put(emu: &Emulator, token: &str, name: &str, body: Value) -> reqwest::blocking::Response {
    emu.http
        .put(emu.url(&format!("/secrets/{name}?api-version=7.6")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .unwrap()
}

#[test]
fn expired_and_not_yet_valid_secrets_are_returned_as_key_vault_does() {
    let emu = Emulator::start(&[]);
    let token = emu.token("officer");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (name, attributes) in [
        ("old", json!({"exp": now - 60})),
        ("early", json!({"nbf": now + 3600})),
    ] {
        let r = put(
            &emu,
            &token,
            name,
            json!({"value": VALUE, "attributes": attributes}),
        );
        assert_eq!(r.status(), 200);
        let got = emu
            .http
            .get(emu.url(&format!("/secrets/{name}?api-version=7.6")))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(got.status(), 200, "{name}");
        let got: Value = got.json().unwrap();
        assert_eq!(got["value"], VALUE);
        assert_eq!(got["attributes"].get("exp").is_some(), name == "old");
    }
}

#[test]
fn sizes_over_the_service_limits_get_bad_parameter() {
    let emu = Emulator::start(&[]);
    let token = emu.token("officer");
    assert_eq!(
        put(&emu, &token, "fits", json!({"value": "x".repeat(25_600)})).status(),
        200
    );
    let r = put(&emu, &token, "big", json!({"value": "x".repeat(25_601)}));
    assert_eq!(r.status(), 400);
    let body: Value = r.json().unwrap();
    assert_eq!(
        body,
        json!({"error": {
            "code": "BadParameter",
            "message": "Secret is beyond the maximum permitted length of 25600 characters.",
            "innererror": {"code": "SecretTooLarge"}
        }})
    );
    let many: serde_json::Map<String, Value> =
        (0..16).map(|i| (format!("t{i}"), json!("v"))).collect();
    let long = json!({"t": "v".repeat(513)});
    for body in [
        json!({"value": "v", "tags": many}),
        json!({"value": "v", "tags": long}),
        json!({"value": "v", "contentType": "c".repeat(256)}),
    ] {
        let r = put(&emu, &token, "props", body);
        assert_eq!(r.status(), 400);
        let body: Value = r.json().unwrap();
        assert_eq!(body["error"]["code"], "BadParameter");
    }
    // The same limits hold for an update.
    let r = emu
        .http
        .patch(emu.url("/secrets/fits/?api-version=7.6"))
        .bearer_auth(&token)
        .json(&json!({"tags": {"t": "v".repeat(513)}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn an_access_policy_vault_answers_forbidden_by_policy_naming_the_permission() {
    let emu = Emulator::start(&["--permission-model", "access-policy"]);
    assert_eq!(emu.ready["permission_model"], "access-policy");
    let r = put(&emu, &emu.token("reader"), "x", json!({"value": "v"}));
    assert_eq!(r.status(), 403);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByPolicy");
    let msg = body["error"]["message"].as_str().unwrap();
    let reader = emu.principal("reader");
    assert!(
        msg.starts_with(&format!(
            "The user, group or application 'appid={};oid={};iss=https://sts.windows.net/",
            reader["client_id"].as_str().unwrap(),
            reader["object_id"].as_str().unwrap()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("does not have secrets set permission on key vault"),
        "{msg}"
    );

    // The control API switches the model back (and forth).
    let r = emu
        .http
        .put(emu.url("/_emulator/permission-model"))
        .json(&json!({"model": "rbac"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = put(&emu, &emu.token("reader"), "x", json!({"value": "v"}));
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
}

#[test]
fn versions_are_not_listed_in_creation_order() {
    let emu = Emulator::start(&[]);
    let token = emu.token("officer");
    // Freeze the vault's clock: both versions get the same `created` second, as two quick
    // rotations do on the real service.
    let r = emu
        .http
        .put(emu.url("/_emulator/clock"))
        .json(&json!({"frozen_at": 1_700_000_000}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let first: Value = put(&emu, &token, "rot", json!({"value": "1"}))
        .json()
        .unwrap();
    let second: Value = put(&emu, &token, "rot", json!({"value": "2"}))
        .json()
        .unwrap();
    assert_eq!(first["attributes"]["created"], 1_700_000_000);
    let listed: Value = emu
        .http
        .get(emu.url("/secrets/rot/versions?api-version=7.6"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let ids: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            second["id"].as_str().unwrap(),
            first["id"].as_str().unwrap()
        ]
    );
    // A get without version names the current one.
    let current: Value = emu
        .http
        .get(emu.url("/secrets/rot?api-version=7.6"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(current["id"], second["id"]);
}

#[test]
fn entra_errors_carry_crlf_lines_and_the_documented_fields() {
    let emu = Emulator::start(&[]);
    let wrong = emu
        .http
        .post(emu.url(&format!(
            "/{}/oauth2/v2.0/token",
            emu.ready["tenant_id"].as_str().unwrap()
        )))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "00000000-0000-0000-0000-000000000000"),
            ("client_secret", "x"),
            ("scope", "https://vault.azure.net/.default"),
        ])
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 400);
    let raw = wrong.text().unwrap();
    // The escapes themselves are on the wire, as Entra sends them.
    assert!(raw.contains(r"\r\nTrace ID: "), "{raw}");
    let err: Value = serde_json::from_str(&raw).unwrap();
    let description = err["error_description"].as_str().unwrap();
    let lines: Vec<&str> = description.split("\r\n").collect();
    assert_eq!(lines.len(), 4, "{description}");
    assert!(lines[0].starts_with("AADSTS700016: "));
    assert!(lines[1].starts_with("Trace ID: "));
    assert!(lines[2].starts_with("Correlation ID: "));
    assert!(lines[3].starts_with("Timestamp: "));
    assert_eq!(err["error"], "unauthorized_client");
    assert_eq!(err["error_codes"], json!([700016]));
    for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(err[field].is_string(), "{field}");
    }
}
