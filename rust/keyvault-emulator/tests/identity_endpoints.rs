//! The managed identity endpoints of Azure hosts, each on its own plain-HTTP listener, checked
//! request by request against the real services' protocols (see src/identity/*.rs for sources).

mod common;

use common::{claims, Emulator};
use serde_json::{json, Value};

const VAULT: &str = "https://vault.azure.net";

fn principal_id(emu: &Emulator, name: &str, field: &str) -> String {
    emu.principal(name)[field].as_str().unwrap().to_string()
}

#[test]
fn imds_needs_the_metadata_header_and_answers_numbers_as_strings() {
    let emu = Emulator::with_identity_listeners();
    let url = emu.http_url(
        "imds",
        &format!("/metadata/identity/oauth2/token?api-version=2018-02-01&resource={VAULT}"),
    );
    let bare = emu.http.get(&url).send().unwrap();
    assert_eq!(bare.status(), 400);
    assert_eq!(
        bare.json::<Value>().unwrap(),
        json!({"error": "invalid_request", "error_description": "Required metadata header not specified"})
    );

    let ok: Value = emu
        .http
        .get(&url)
        .header("Metadata", "true")
        .send()
        .unwrap()
        .json()
        .unwrap();
    for field in ["expires_in", "expires_on", "ext_expires_in", "not_before"] {
        assert!(
            ok[field].as_str().unwrap().parse::<i64>().is_ok(),
            "{field}: {ok}"
        );
    }
    assert_eq!(ok["resource"], VAULT);
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["client_id"], principal_id(&emu, "managed", "client_id"));
    let token = claims(ok["access_token"].as_str().unwrap());
    assert_eq!(token["aud"], VAULT);
    assert_eq!(token["oid"], principal_id(&emu, "managed", "object_id"));

    let no_version = emu
        .http
        .get(emu.http_url(
            "imds",
            &format!("/metadata/identity/oauth2/token?resource={VAULT}"),
        ))
        .header("Metadata", "true")
        .send()
        .unwrap();
    assert_eq!(no_version.status(), 400);
}

#[test]
fn imds_selects_a_user_assigned_identity_by_client_object_or_resource_id() {
    let emu = Emulator::with_identity_listeners();
    let base = format!("/metadata/identity/oauth2/token?api-version=2019-08-01&resource={VAULT}");
    let get = |extra: &str| {
        emu.http
            .get(emu.http_url("imds", &format!("{base}{extra}")))
            .header("Metadata", "true")
            .send()
            .unwrap()
    };
    let ua_client = principal_id(&emu, "user-assigned", "client_id");
    let ua_object = principal_id(&emu, "user-assigned", "object_id");
    let res_id = "/subscriptions/00000000-0000-4000-8000-00000000c1c1/resourcegroups/hg-keyvault/\
                  providers/Microsoft.ManagedIdentity/userAssignedIdentities/user-assigned";
    for extra in [
        format!("&client_id={ua_client}"),
        format!("&object_id={ua_object}"),
        format!("&msi_res_id={res_id}"),
    ] {
        let body: Value = get(&extra).json().unwrap();
        assert_eq!(body["client_id"], ua_client.as_str(), "{extra}");
        assert_eq!(
            claims(body["access_token"].as_str().unwrap())["oid"],
            ua_object.as_str()
        );
    }
    let unknown = get("&client_id=00000000-0000-4000-8000-0000000000ff");
    assert_eq!(unknown.status(), 400);
    assert_eq!(
        unknown.json::<Value>().unwrap()["error_description"],
        "Identity not found"
    );

    // A VM without a system-assigned identity: the bare request finds none.
    emu.control(
        "/identities",
        json!({"system_assigned": false, "user_assigned": []}),
    );
    let none = get("");
    assert_eq!(none.status(), 400);
    assert_eq!(
        none.json::<Value>().unwrap()["error_description"],
        "Identity not found"
    );
}

#[test]
fn arc_challenges_with_a_key_file_and_accepts_its_content_once() {
    let emu = Emulator::with_identity_listeners();
    let url = emu.http_url(
        "arc",
        &format!("/metadata/identity/oauth2/token?api-version=2020-06-01&resource={VAULT}"),
    );
    let first = emu
        .http
        .get(&url)
        .header("Metadata", "true")
        .send()
        .unwrap();
    assert_eq!(first.status(), 401);
    let realm = first.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let path = realm
        .strip_prefix("Basic realm=")
        .expect("Basic realm=<path>");
    let path = std::path::Path::new(path);
    assert_eq!(
        path.parent().unwrap(),
        std::path::Path::new(&emu.s("arc_token_dir"))
    );
    assert_eq!(path.extension().unwrap(), "key");
    let key = std::fs::read_to_string(path).unwrap();
    assert!(key.len() <= 4096);

    let second = emu
        .http
        .get(&url)
        .header("Metadata", "true")
        .header("Authorization", format!("Basic {key}"))
        .send()
        .unwrap();
    assert_eq!(second.status(), 200);
    let body: Value = second.json().unwrap();
    assert!(body["expires_on"].as_str().unwrap().parse::<i64>().is_ok());
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], VAULT);

    // The key served once; a replay gets a new challenge.
    let replay = emu
        .http
        .get(&url)
        .header("Metadata", "true")
        .header("Authorization", format!("Basic {key}"))
        .send()
        .unwrap();
    assert_eq!(replay.status(), 401);
    // Arc has no user-assigned identities.
    let ua = emu
        .http
        .get(format!("{url}&client_id=x"))
        .header("Metadata", "true")
        .send()
        .unwrap();
    assert_eq!(ua.status(), 400);
}

#[test]
fn arc_realm_can_name_a_file_outside_the_directory_not_key_or_too_big() {
    let emu = Emulator::with_identity_listeners();
    let dir = std::path::PathBuf::from(emu.s("arc_token_dir"));
    let url = emu.http_url(
        "arc",
        &format!("/metadata/identity/oauth2/token?api-version=2020-06-01&resource={VAULT}"),
    );
    let realm = |mode: &str| {
        emu.control("/arc", json!({"realm": mode}));
        let resp = emu
            .http
            .get(&url)
            .header("Metadata", "true")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 401);
        let header = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        std::path::PathBuf::from(header.strip_prefix("Basic realm=").unwrap())
    };
    let outside = realm("outside");
    assert_ne!(outside.parent().unwrap(), dir);
    assert_eq!(outside.extension().unwrap(), "key");
    let not_key = realm("not-key");
    assert_eq!(not_key.parent().unwrap(), dir);
    assert_ne!(not_key.extension().unwrap(), "key");
    let big = realm("too-big");
    assert_eq!(big.parent().unwrap(), dir);
    assert!(std::fs::metadata(&big).unwrap().len() > 4096);
}

#[test]
fn cloud_shell_takes_a_form_post_with_the_metadata_header() {
    let emu = Emulator::with_identity_listeners();
    let url = emu.http_url("cloudshell", "/oauth2/token");
    let bare = emu
        .http
        .post(&url)
        .form(&[("resource", VAULT)])
        .send()
        .unwrap();
    assert_eq!(bare.status(), 400);
    let get = emu
        .http
        .get(&url)
        .header("Metadata", "true")
        .send()
        .unwrap();
    assert_eq!(get.status(), 405);
    let ok: Value = emu
        .http
        .post(&url)
        .header("Metadata", "true")
        .form(&[("resource", VAULT)])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(ok["expires_on"].as_str().unwrap().parse::<i64>().is_ok());
    assert_eq!(ok["resource"], VAULT);
}

#[test]
fn azure_ml_needs_its_secret_header_and_api_version_2017() {
    let emu = Emulator::with_identity_listeners();
    let url = |q: &str| emu.http_url("ml", &format!("/MSI/auth?{q}"));
    let good = format!("api-version=2017-09-01&resource={VAULT}");
    let no_secret = emu.http.get(url(&good)).send().unwrap();
    assert_eq!(no_secret.status(), 401);
    let wrong_version = emu
        .http
        .get(url(&format!("api-version=2019-08-01&resource={VAULT}")))
        .header("secret", emu.s("msi_secret"))
        .send()
        .unwrap();
    assert_eq!(wrong_version.status(), 400);
    let ok: Value = emu
        .http
        .get(url(&good))
        .header("secret", emu.s("msi_secret"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(ok["expires_on"].as_str().unwrap().parse::<i64>().is_ok());
    let ua_client = principal_id(&emu, "user-assigned", "client_id");
    let ua: Value = emu
        .http
        .get(url(&format!("{good}&clientid={ua_client}")))
        .header("secret", emu.s("msi_secret"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ua["client_id"], ua_client.as_str());
}

#[test]
fn app_service_answers_over_plain_http_as_the_real_localhost_endpoint() {
    let emu = Emulator::with_identity_listeners();
    let url = emu.http_url(
        "appservice",
        &format!("/msi/token?api-version=2019-08-01&resource={VAULT}"),
    );
    assert!(url.starts_with("http://127.0.0.1:"));
    let wrong = emu
        .http
        .get(&url)
        .header("X-IDENTITY-HEADER", "nope")
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok: Value = emu
        .http
        .get(&url)
        .header("X-IDENTITY-HEADER", emu.s("identity_header"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(ok["expires_on"].is_string());
    // The plain listeners serve only their own endpoint: no vault, no control API.
    let other = emu
        .http
        .get(emu.http_url("appservice", "/_emulator/state"))
        .send()
        .unwrap();
    assert_eq!(other.status(), 404);
}

#[test]
fn listeners_bind_only_loopback_or_the_imds_address_for_imds() {
    for bad in [
        "imds=10.0.0.1:80",
        "arc=169.254.169.254:80",
        "nosuch=127.0.0.1:0",
    ] {
        // In a network namespace of the test's own (`unshare -n`): refused at parsing, but no
        // listener on a link-local address is ever attempted in the machine's namespace.
        let out = std::process::Command::new("unshare")
            .args([
                "-n",
                env!("CARGO_BIN_EXE_hg-keyvault-emulator"),
                "--http-listen",
                bad,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("unshare:"),
            "unshare failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{bad}: no ready line");
    }
}

#[test]
fn imds_is_not_served_in_the_machines_own_network_namespace() {
    // The emulator serves IMDS only where `lo` is the one device (a namespace made with
    // `unshare -n`). The test plays a namespace that has another device too, as the machine's
    // own does, inside a namespace of its own (a veth pair there), so nothing is ever attempted
    // on the link-local address in the machine's namespace: refused before binding anything.
    let out = std::process::Command::new("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "ip link add kv0 type veth peer name kv1 && exec \"$0\" --http-listen \"$1\"",
            env!("CARGO_BIN_EXE_hg-keyvault-emulator"),
            "imds=169.254.169.254:80",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no ready line");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("own network namespace"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
