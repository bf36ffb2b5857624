//! The control API for identities (no auth; loopback only), beside `control.rs`'s faults:
//!
//! - `POST|PUT /_emulator/federated-credentials` `[{"principal", "issuer", "subject", "audiences"?}]`
//!   replaces the federated credentials of the apps; `GET` lists them; `DELETE` removes all.
//! - `POST /_emulator/identities` `{"system_assigned": bool, "user_assigned": ["user-assigned"]}`:
//!   what the host's managed identity endpoints serve.
//! - `POST /_emulator/arc` `{"realm": "normal"|"outside"|"not-key"|"too-big"}`: which file the
//!   next Arc challenges name.
//! - `POST /_emulator/oidc/{github|pipelines|gitlab}/claims` `{...}`: claims merged over the
//!   issuer's defaults in every token it mints from now on (`{}` restores them).
//! - `POST /_emulator/oidc/mint` `{"issuer": "gitlab", "aud"?: ..., "claims"?: {...}}` ->
//!   `{"token": jwt}`: a token as the CI would put into a job's environment.

use crate::app::App;
use crate::ci_oidc::{Ci, ENTRA_AUDIENCE};
use crate::control::bad_request;
use crate::federation;
use crate::http::{json, Resp};
use crate::identity::arc::Realm;
use crate::identity::HostIdentities;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArcControl {
    realm: Realm,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mint {
    issuer: String,
    #[serde(default)]
    aud: Option<String>,
    #[serde(default)]
    claims: Map<String, Value>,
}

fn federated_list(app: &App) -> Resp {
    json(200, &json!({"federated_credentials": *app.federated()}))
}

pub fn handle(app: &App, method: &str, path: &str, body: &[u8]) -> Resp {
    match (method, path) {
        ("POST" | "PUT", "/_emulator/federated-credentials") => {
            match federation::parse(body, app) {
                Ok(list) => {
                    *app.federated() = list;
                    federated_list(app)
                }
                Err(e) => bad_request(&e),
            }
        }
        ("GET", "/_emulator/federated-credentials") => federated_list(app),
        ("DELETE", "/_emulator/federated-credentials") => {
            app.federated().clear();
            federated_list(app)
        }
        ("POST" | "PUT", "/_emulator/identities") => {
            match serde_json::from_slice::<HostIdentities>(body) {
                Ok(host) => {
                    if let Some(bad) = host
                        .user_assigned
                        .iter()
                        .find(|n| !app.principals.iter().any(|p| p.name == **n))
                    {
                        return bad_request(&format!("no principal named {bad:?}"));
                    }
                    *app.host_identities() = host;
                    json(200, &json!({"ok": true}))
                }
                Err(e) => bad_request(&format!("invalid identities: {e}")),
            }
        }
        ("POST" | "PUT", "/_emulator/arc") => match serde_json::from_slice::<ArcControl>(body) {
            Ok(c) => {
                app.arc().realm = c.realm;
                json(200, &json!({"ok": true}))
            }
            Err(e) => bad_request(&format!("invalid arc control: {e}")),
        },
        ("POST", "/_emulator/oidc/mint") => match serde_json::from_slice::<Mint>(body) {
            Ok(m) => match Ci::from_name(&m.issuer) {
                Some(ci) => {
                    let aud = m.aud.as_deref().unwrap_or(ENTRA_AUDIENCE);
                    json(
                        200,
                        &json!({"token": app.ci.mint(&app.base_url, ci, aud, &m.claims)}),
                    )
                }
                None => bad_request(&format!("no issuer named {:?}", m.issuer)),
            },
            Err(e) => bad_request(&format!("invalid mint request: {e}")),
        },
        ("POST" | "PUT", p) if p.ends_with("/claims") => {
            let name = p
                .trim_start_matches("/_emulator/oidc/")
                .trim_end_matches("/claims");
            let Some(ci) = Ci::from_name(name) else {
                return bad_request(&format!("no issuer named {name:?}"));
            };
            match serde_json::from_slice::<Map<String, Value>>(body) {
                Ok(claims) => {
                    app.ci.set_claims(ci, claims);
                    json(200, &json!({"ok": true}))
                }
                Err(e) => bad_request(&format!("invalid claims: {e}")),
            }
        }
        _ => json(
            404,
            &json!({"error": format!("no control endpoint {method} {path}")}),
        ),
    }
}
