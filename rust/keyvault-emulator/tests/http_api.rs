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
