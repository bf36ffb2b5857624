//! Entra access tokens for registered apps (issue 13): RS256 with a kid that a relying party
//! checks against the tenant's JWKS found through the OpenID configuration, v1 and v2 claims as
//! the app's accepted token version says, app roles, AADSTS500011 for an unknown resource, key
//! rollover and run-time token settings.

mod common;

use aws_lc_rs::signature::{self, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{claims, Emulator};
use serde_json::{json, Value};

const API: &str = "api://hg-proxy";

fn tenant(emu: &Emulator) -> String {
    emu.s("tenant_id")
}

/// The token endpoint's answer for `principal` (client secret) and `scope`.
fn token_response(emu: &Emulator, principal: &str, scope: &str) -> reqwest::blocking::Response {
    let p = emu.principal(principal);
    emu.http
        .post(emu.url(&format!("/{}/oauth2/v2.0/token", tenant(emu))))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", p["client_id"].as_str().unwrap()),
            ("client_secret", p["client_secret"].as_str().unwrap()),
            ("scope", scope),
        ])
        .send()
        .unwrap()
}

fn token(emu: &Emulator, principal: &str, scope: &str) -> String {
    let resp = token_response(emu, principal, scope);
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn get(emu: &Emulator, path: &str) -> Value {
    let resp = emu.http.get(emu.url(path)).send().unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().unwrap()
}

/// Verifies `token` as a relying party would: the tenant's OpenID configuration (`v2` or v1),
/// its issuer equal to the token's, its jwks_uri, the key by kid, RS256.
fn verify(emu: &Emulator, token: &str, v2: bool) -> Result<Value, String> {
    let prefix = if v2 { "/v2.0" } else { "" };
    let config = get(
        emu,
        &format!("/{}{prefix}/.well-known/openid-configuration", tenant(emu)),
    );
    let c = claims(token);
    if config["issuer"] != c["iss"] {
        return Err(format!("issuer {} is not {}", c["iss"], config["issuer"]));
    }
    let jwks: Value = emu
        .http
        .get(config["jwks_uri"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut parts = token.split('.');
    let (h, body, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .ok_or_else(|| format!("kid {} not in the JWKS", header["kid"]))?;
    let b = |name: &str| URL_SAFE_NO_PAD.decode(key[name].as_str().unwrap()).unwrap();
    RsaPublicKeyComponents {
        n: b("n"),
        e: b("e"),
    }
    .verify(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        format!("{h}.{body}").as_bytes(),
        &URL_SAFE_NO_PAD.decode(s).unwrap(),
    )
    .map_err(|_| "signature does not check".to_string())?;
    Ok(c)
}

fn register(emu: &Emulator, version: u8) -> Value {
    emu.control(
        "/entra/apps",
        json!({"app_id_uri": API, "token_version": version,
               "roles": {"hg.access": ["officer", emu.principal("managed")["object_id"]]}}),
    )
}

#[test]
fn a_v1_app_gets_v1_tokens_that_verify_against_the_tenants_jwks() {
    let emu = Emulator::start(&[]);
    let reg = register(&emu, 1);
    let t = token(&emu, "officer", &format!("{API}/.default"));
    let c = verify(&emu, &t, false).unwrap();
    let officer = emu.principal("officer");
    assert_eq!(c["aud"], API);
    assert_eq!(
        c["iss"],
        format!("https://sts.windows.net/{}/", tenant(&emu))
    );
    assert_eq!(c["ver"], "1.0");
    assert_eq!(c["tid"], tenant(&emu));
    assert_eq!(c["oid"], officer["object_id"]);
    assert_eq!(c["appid"], officer["client_id"]);
    assert_eq!(c["roles"], json!(["hg.access"]));
    let (iat, nbf, exp) = (
        c["iat"].as_i64().unwrap(),
        c["nbf"].as_i64().unwrap(),
        c["exp"].as_i64().unwrap(),
    );
    assert!(nbf <= iat && iat < exp, "{c}");
    // Asked by client id, a v1 token's audience is the client id.
    let by_id = token(
        &emu,
        "officer",
        &format!("{}/.default", reg["client_id"].as_str().unwrap()),
    );
    assert_eq!(
        verify(&emu, &by_id, false).unwrap()["aud"],
        reg["client_id"]
    );
    // Both JWKS paths serve the same keys.
    let tid = tenant(&emu);
    assert_eq!(
        get(&emu, &format!("/{tid}/discovery/keys")),
        get(&emu, &format!("/{tid}/discovery/v2.0/keys"))
    );
}

#[test]
fn a_v2_app_gets_v2_tokens_whose_audience_is_its_client_id() {
    let emu = Emulator::start(&[]);
    let reg = register(&emu, 2);
    let t = token(&emu, "officer", &format!("{API}/.default"));
    let c = verify(&emu, &t, true).unwrap();
    assert_eq!(c["aud"], reg["client_id"]);
    assert_eq!(
        c["iss"],
        format!("{}/{}/v2.0", emu.s("authority_host"), tenant(&emu))
    );
    assert_eq!(c["ver"], "2.0");
    assert_eq!(c["azp"], emu.principal("officer")["client_id"]);
    assert!(c.get("appid").is_none(), "{c}");
    // A v2 token does not pass as v1: the issuers differ.
    assert!(verify(&emu, &t, false).unwrap_err().contains("issuer"));
}

#[test]
fn roles_name_only_the_assignments_of_the_caller() {
    let emu = Emulator::start(&[]);
    register(&emu, 1);
    let t = token(&emu, "reader", &format!("{API}/.default"));
    let c = verify(&emu, &t, false).unwrap();
    assert!(c.get("roles").is_none(), "{c}");
}

#[test]
fn an_unknown_resource_is_refused_as_entra_does() {
    let emu = Emulator::start(&[]);
    let resp = token_response(&emu, "officer", "api://nowhere/.default");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"], "invalid_resource");
    assert_eq!(body["error_codes"], json!([500011]));
    let text = body["error_description"].as_str().unwrap();
    assert!(
        text.starts_with("AADSTS500011: The resource principal named api://nowhere was not found in the tenant named"),
        "{text}"
    );
    assert!(text.contains("\r\nTrace ID: "), "{text}");
    // The vault's own tokens are unchanged.
    assert_eq!(
        claims(&emu.token("officer"))["aud"],
        "https://vault.azure.net"
    );
}

#[test]
fn managed_identity_endpoints_issue_app_tokens_and_refuse_unknown_resources() {
    let emu = Emulator::with_identity_listeners();
    register(&emu, 1);
    let imds = |resource: &str| {
        emu.http
            .get(emu.http_url(
                "imds",
                &format!(
                    "/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}"
                ),
            ))
            .header("Metadata", "true")
            .send()
            .unwrap()
    };
    let ok: Value = imds(API).json().unwrap();
    let c = verify(&emu, ok["access_token"].as_str().unwrap(), false).unwrap();
    assert_eq!(c["oid"], emu.principal("managed")["object_id"]);
    assert_eq!(c["roles"], json!(["hg.access"]));
    let refused = imds("api://nowhere");
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().unwrap();
    assert_eq!(body["error"], "invalid_resource");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS500011: "));
}

#[test]
fn rotation_publishes_the_new_key_next_to_the_old_and_signs_with_it() {
    let emu = Emulator::start(&[]);
    register(&emu, 1);
    let scope = format!("{API}/.default");
    let before = token(&emu, "officer", &scope);
    let keys = emu.control("/entra/keys/rotate", json!({}));
    assert_eq!(keys["published"].as_array().unwrap().len(), 2);
    let after = token(&emu, "officer", &scope);
    let kid = |t: &str| {
        let h = t.split('.').next().unwrap();
        serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()["kid"].clone()
    };
    assert_ne!(kid(&before), kid(&after));
    assert_eq!(kid(&after), keys["signing"]);
    // Both still verify (rollover), until a second rotation withdraws the first key.
    verify(&emu, &before, false).unwrap();
    verify(&emu, &after, false).unwrap();
    emu.control("/entra/keys/rotate", json!({}));
    assert!(verify(&emu, &before, false)
        .unwrap_err()
        .contains("not in the JWKS"));
    // An unpublished key signs tokens no relying party can check.
    emu.control("/entra/keys/rotate", json!({"publish": false}));
    let rogue = token(&emu, "officer", &scope);
    assert!(verify(&emu, &rogue, false)
        .unwrap_err()
        .contains("not in the JWKS"));
}

#[test]
fn settings_shorten_lifetimes_and_shift_tenant_and_clock() {
    let emu = Emulator::start(&[]);
    register(&emu, 1);
    let scope = format!("{API}/.default");
    emu.control("/entra/settings", json!({"lifetime": 5}));
    let resp: Value = token_response(&emu, "officer", &scope).json().unwrap();
    assert_eq!(resp["expires_in"], 5);
    let c = claims(resp["access_token"].as_str().unwrap());
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 5);

    emu.control(
        "/entra/settings",
        json!({"issuer_tenant": "00000000-0000-4000-8000-0000000000ff", "claims_time_offset": -7200}),
    );
    let resp: Value = token_response(&emu, "officer", &scope).json().unwrap();
    let c = claims(resp["access_token"].as_str().unwrap());
    assert_eq!(c["tid"], "00000000-0000-4000-8000-0000000000ff");
    assert_eq!(
        c["iss"],
        "https://sts.windows.net/00000000-0000-4000-8000-0000000000ff/"
    );
    // The client is told the usual lifetime while the claims say it has expired.
    assert_eq!(resp["expires_in"], 3600);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(c["exp"].as_i64().unwrap() < now, "{c}");
}
