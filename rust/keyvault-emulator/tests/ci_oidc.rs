//! The CI OIDC issuers and Entra's federated credential check: tokens are RS256 with a kid, their
//! keys are at the issuer's JWKS, and Entra accepts one only for the exact issuer, subject and
//! audience of a federated credential of the app.

mod common;

use aws_lc_rs::signature::{self, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{claims, Emulator};
use serde_json::{json, Value};

const AUDIENCE: &str = "api://AzureADTokenExchange";

fn github_token(emu: &Emulator) -> String {
    let oidc = &emu.ready["oidc"]["github"];
    let resp = emu
        .http
        .get(format!(
            "{}&audience={AUDIENCE}",
            oidc["request_url"].as_str().unwrap()
        ))
        .header(
            "Authorization",
            format!("bearer {}", oidc["request_token"].as_str().unwrap()),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Verifies `token` as a relying party would: discovery document, jwks_uri, key by kid, RS256.
fn verify_with_discovery(emu: &Emulator, token: &str) -> Value {
    let iss = claims(token)["iss"].as_str().unwrap().to_string();
    let config: Value = emu
        .http
        .get(format!("{iss}/.well-known/openid-configuration"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(config["issuer"], iss.as_str());
    let jwks: Value = emu
        .http
        .get(config["jwks_uri"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut parts = token.split('.');
    let (h, c, s) = (
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
        .expect("the token's kid is in the issuer's JWKS");
    let b = |name: &str| URL_SAFE_NO_PAD.decode(key[name].as_str().unwrap()).unwrap();
    RsaPublicKeyComponents {
        n: b("n"),
        e: b("e"),
    }
    .verify(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        format!("{h}.{c}").as_bytes(),
        &URL_SAFE_NO_PAD.decode(s).unwrap(),
    )
    .expect("signature checks against the JWKS");
    claims(token)
}

fn federate(emu: &Emulator, principal: &str, issuer: &str, subject: &str) {
    emu.control(
        "/federated-credentials",
        json!([{"principal": principal, "issuer": issuer, "subject": subject}]),
    );
}

#[test]
fn github_mints_rs256_id_tokens_for_the_requested_audience() {
    let emu = Emulator::start(&[]);
    let token = github_token(&emu);
    let c = verify_with_discovery(&emu, &token);
    assert_eq!(c["aud"], AUDIENCE);
    assert_eq!(c["sub"], "repo:hg-keyvault/ci:ref:refs/heads/main");
    assert_eq!(c["iss"], emu.ready["oidc"]["github"]["issuer"]);
    assert!(c["exp"].as_i64().unwrap() > c["iat"].as_i64().unwrap());

    let refused = emu
        .http
        .get(emu.ready["oidc"]["github"]["request_url"].as_str().unwrap())
        .header("Authorization", "bearer wrong")
        .send()
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[test]
fn pipelines_mints_for_its_service_connection_only() {
    let emu = Emulator::start(&[]);
    let p = &emu.ready["oidc"]["pipelines"];
    let post = |connection: &str, token: &str| {
        emu.http
            .post(format!(
                "{}?api-version=7.1&serviceConnectionId={connection}",
                p["request_uri"].as_str().unwrap()
            ))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send()
            .unwrap()
    };
    let connection = p["service_connection_id"].as_str().unwrap();
    let access = p["access_token"].as_str().unwrap();
    let ok = post(connection, access);
    assert_eq!(ok.status(), 200);
    let token = ok.json::<Value>().unwrap()["oidcToken"]
        .as_str()
        .unwrap()
        .to_string();
    let c = verify_with_discovery(&emu, &token);
    assert_eq!(c["sub"], "sc://hg-keyvault/ci/hg-keyvault");
    assert_eq!(c["aud"], AUDIENCE);
    assert_eq!(post(connection, "wrong").status(), 401);
    assert_eq!(
        post("00000000-0000-4000-8000-000000000000", access).status(),
        404
    );
}

#[test]
fn entra_exchanges_an_assertion_that_matches_a_federated_credential() {
    let emu = Emulator::start(&[]);
    let issuer = emu.ready["oidc"]["github"]["issuer"].as_str().unwrap();
    federate(
        &emu,
        "reader",
        issuer,
        "repo:hg-keyvault/ci:ref:refs/heads/main",
    );
    let resp = emu.exchange("reader", &github_token(&emu));
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["appid"], emu.principal("reader")["client_id"]);
    // The access token works at the vault (Key Vault Secrets User may read metadata).
    let list = emu
        .http
        .get(emu.url("/secrets?api-version=7.6"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(list.status(), 200);
}

#[test]
fn entra_refuses_another_subject_with_aadsts70021() {
    let emu = Emulator::start(&[]);
    let issuer = emu.ready["oidc"]["github"]["issuer"].as_str().unwrap();
    federate(
        &emu,
        "reader",
        issuer,
        "repo:hg-keyvault/ci:ref:refs/heads/main",
    );
    emu.control(
        "/oidc/github/claims",
        json!({"sub": "repo:hg-keyvault/ci:ref:refs/heads/feature"}),
    );
    let resp = emu.exchange("reader", &github_token(&emu));
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().unwrap();
    assert_eq!(err["error"], "invalid_request");
    assert_eq!(err["error_codes"], json!([70021]));
    let text = err["error_description"].as_str().unwrap();
    assert!(text.starts_with("AADSTS70021: No matching federated identity record found"));
    assert!(text.contains("Assertion Subject: 'repo:hg-keyvault/ci:ref:refs/heads/feature'"));
    assert!(text.contains(&format!("Assertion Issuer: '{issuer}'")));

    // The same token for an app without the credential, or for another audience: refused too.
    emu.control("/oidc/github/claims", json!({}));
    assert_eq!(emu.exchange("officer", &github_token(&emu)).status(), 400);
    let other_aud = emu.control(
        "/oidc/mint",
        json!({"issuer": "github", "aud": "api://other"}),
    );
    let resp = emu.exchange("reader", other_aud["token"].as_str().unwrap());
    assert_eq!(resp.json::<Value>().unwrap()["error_codes"], json!([70021]));
}

#[test]
fn entra_checks_the_signature_against_the_claimed_issuers_jwks() {
    let emu = Emulator::start(&[]);
    let github = emu.ready["oidc"]["github"]["issuer"].as_str().unwrap();
    federate(
        &emu,
        "reader",
        github,
        "repo:hg-keyvault/ci:ref:refs/heads/main",
    );
    // Signed by the GitLab issuer's key while claiming GitHub's issuer and subject.
    let forged = emu.control(
        "/oidc/mint",
        json!({"issuer": "gitlab", "claims": {
            "iss": github, "sub": "repo:hg-keyvault/ci:ref:refs/heads/main"}}),
    );
    let resp = emu.exchange("reader", forged["token"].as_str().unwrap());
    assert_eq!(resp.status(), 401);
    let err: Value = resp.json().unwrap();
    assert_eq!(err["error"], "invalid_client");
    assert!(err["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS50013: Assertion failed signature validation."));
    // Garbage is malformed, as before.
    assert_eq!(emu.exchange("reader", "not-a-jwt").status(), 401);
}

#[test]
fn gitlab_tokens_minted_for_a_job_exchange_like_the_others() {
    let emu = Emulator::start(&[]);
    let issuer = emu.ready["oidc"]["gitlab"]["issuer"].as_str().unwrap();
    let minted = emu.control("/oidc/mint", json!({"issuer": "gitlab"}));
    let token = minted["token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(
        c["sub"],
        "project_path:hg-keyvault/ci:ref_type:branch:ref:main"
    );
    // GitLab publishes its keys at /oauth/discovery/keys.
    let config: Value = emu
        .http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(config["jwks_uri"]
        .as_str()
        .unwrap()
        .ends_with("/oauth/discovery/keys"));
    verify_with_discovery(&emu, token);
    federate(
        &emu,
        "officer",
        issuer,
        "project_path:hg-keyvault/ci:ref_type:branch:ref:main",
    );
    assert_eq!(emu.exchange("officer", token).status(), 200);
    let listed = emu
        .http
        .get(emu.url("/_emulator/federated-credentials"))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(
        listed["federated_credentials"][0]["audiences"],
        json!([AUDIENCE])
    );
}
