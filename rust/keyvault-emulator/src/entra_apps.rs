//! App registrations of the tenant (APIs a job's identity asks Entra tokens for, such as an
//! identity-aware proxy in front of an hg server) and the RS256 access tokens Entra issues for
//! them, which any relying party validates against the tenant's JWKS.
//!
//! Token shapes: Microsoft identity platform docs, "Access tokens" (claims reference): a v1.0
//! token has `iss` `https://sts.windows.net/{tid}/`, `aud` the resource as requested (App ID URI
//! or client id) and `appid`; a v2.0 token has `iss` `https://login.microsoftonline.com/{tid}/v2.0`,
//! `aud` always the API's client id, and `azp`. Which version is issued is the *resource's*
//! choice (`accessTokenAcceptedVersion` / `requestedAccessTokenVersion` of its manifest), not the
//! endpoint's. `roles` carries the app roles assigned to the calling principal, and is absent when
//! none is. Keys: "Signing key rollover in the Microsoft identity platform": the JWKS lists more
//! than one key, a relying party picks by `kid`, and a new key signs before the old is withdrawn.

use crate::app::App;
use crate::http::{json, new_uuid, now, Resp};
use crate::principals::Principal;
use crate::rs256::{self, SigningKey};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Microsoft's first-party resources, which exist in every tenant without a registration; their
/// tokens keep the emulator's own format (the vault validates those itself).
const FIRST_PARTY: &[&str] = &[
    "https://vault.azure.net",
    "https://vault.azure.cn",
    "https://vault.usgovcloudapi.net",
    "https://management.azure.com",
    "https://management.core.windows.net",
    "https://graph.microsoft.com",
    "https://storage.azure.com",
    "499b84ac-1321-427f-aa17-267ca6975798", // Azure DevOps
];

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Registration {
    pub app_id_uri: String,
    #[serde(default = "new_uuid")]
    pub client_id: String,
    /// 1 or 2: the `accessTokenAcceptedVersion` of the API's manifest (null there means 1).
    #[serde(default = "one")]
    pub token_version: u8,
    /// App role value -> principals assigned to it (name, client id or object id).
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
}

fn one() -> u8 {
    1
}

/// Run-time settings of the tokens issued for registered apps (control API).
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
pub struct Settings {
    /// Lifetime in seconds of app tokens (Entra's default is 60-90 minutes).
    pub lifetime: Option<u64>,
    /// Stamp `tid` and `iss` with this tenant instead of ours: a token from the wrong tenant.
    pub issuer_tenant: Option<String>,
    /// Seconds added to `iat`, `nbf`, `exp` but not to `expires_in`: the issuer's clock is off.
    pub claims_time_offset: Option<i64>,
}

pub struct EntraApps {
    pub apps: Vec<Registration>,
    /// Published keys, oldest first; the last one signs unless `unpublished` is set.
    keys: Vec<SigningKey>,
    /// A signing key that is in no JWKS (the relying party sees an unknown `kid`).
    unpublished: Option<SigningKey>,
    pub settings: Settings,
}

impl Default for EntraApps {
    fn default() -> Self {
        EntraApps {
            apps: Vec::new(),
            keys: vec![SigningKey::generate()],
            unpublished: None,
            settings: Settings::default(),
        }
    }
}

impl EntraApps {
    fn signer(&self) -> &SigningKey {
        self.unpublished
            .as_ref()
            .unwrap_or_else(|| self.keys.last().expect("one key at least"))
    }

    pub fn jwks(&self) -> Value {
        rs256::jwks(&self.keys)
    }

    /// A new key signs from now on; the JWKS keeps the previous one (rollover), or, with
    /// `publish = false`, stays as it is.
    pub fn rotate(&mut self, publish: bool) {
        let key = SigningKey::generate();
        if publish {
            self.unpublished = None;
            self.keys.push(key);
            if self.keys.len() > 2 {
                self.keys.remove(0);
            }
        } else {
            self.unpublished = Some(key);
        }
    }

    fn keys_state(&self) -> Value {
        json!({
            "published": self.keys.iter().map(|k| k.kid()).collect::<Vec<_>>(),
            "signing": self.signer().kid(),
        })
    }

    /// The registration `resource` (an App ID URI or a client id, `/.default` removed) names.
    fn find(&self, resource: &str) -> Option<&Registration> {
        let r = resource.trim_end_matches('/');
        self.apps.iter().find(|a| {
            a.app_id_uri.trim_end_matches('/') == r || a.client_id.eq_ignore_ascii_case(r)
        })
    }
}

pub fn is_first_party(resource: &str) -> bool {
    let r = resource.trim_end_matches('/');
    FIRST_PARTY.iter().any(|f| f.eq_ignore_ascii_case(r))
}

/// Entra's answer for a resource the tenant does not know. Source: AADSTS500011 in Microsoft's
/// "Microsoft Entra authentication and authorization error codes" and the Q&A threads quoting it.
pub fn unknown_resource(app: &App, resource: &str) -> Resp {
    crate::entra::aad_error(
        400,
        "invalid_resource",
        500011,
        &format!(
            "The resource principal named {resource} was not found in the tenant named {}. \
             This can happen if the application has not been installed by the administrator of \
             the tenant or consented to by any user in the tenant. You might have sent your \
             authentication request to the wrong tenant.",
            app.tenant_id
        ),
    )
}

pub struct Issued {
    pub token: String,
    /// What the client is told (`expires_on`): issue time + lifetime by the client's clock.
    pub exp: i64,
    pub lifetime: u64,
}

fn assigned(p: &Principal, who: &str) -> bool {
    who == p.name || who.eq_ignore_ascii_case(p.client_id) || who.eq_ignore_ascii_case(p.object_id)
}

/// A token of `p` for the registered app `resource` names, or None when none does.
pub fn issue(app: &App, p: &Principal, resource: &str, lifetime: u64) -> Option<Issued> {
    let entra = app.entra();
    let reg = entra.find(resource)?;
    let lifetime = entra.settings.lifetime.unwrap_or(lifetime);
    let tid = entra
        .settings
        .issuer_tenant
        .clone()
        .unwrap_or_else(|| app.tenant_id.to_string());
    let issued_at = now();
    let iat = issued_at + entra.settings.claims_time_offset.unwrap_or(0);
    let roles: Vec<&String> = reg
        .roles
        .iter()
        .filter(|(_, who)| who.iter().any(|w| assigned(p, w)))
        .map(|(role, _)| role)
        .collect();
    let mut claims = json!({
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime as i64,
        "tid": tid,
        "oid": p.object_id,
        "sub": p.object_id,
        "idtyp": "app",
        "uti": new_uuid(),
    });
    if reg.token_version == 2 {
        claims["aud"] = json!(reg.client_id);
        claims["iss"] = json!(format!("{}/{tid}/v2.0", app.base_url));
        claims["azp"] = json!(p.client_id);
        claims["azpacr"] = json!("1");
        claims["ver"] = json!("2.0");
    } else {
        claims["aud"] = json!(resource.trim_end_matches('/'));
        claims["iss"] = json!(format!("https://sts.windows.net/{tid}/"));
        claims["appid"] = json!(p.client_id);
        claims["appidacr"] = json!("1");
        claims["ver"] = json!("1.0");
    }
    if !roles.is_empty() {
        claims["roles"] = json!(roles);
    }
    Some(Issued {
        token: entra.signer().sign(&claims),
        exp: issued_at + lifetime as i64,
        lifetime,
    })
}

fn bad_request(message: &str) -> Resp {
    json(400, &json!({"error": message}))
}

fn apps_list(app: &App) -> Resp {
    json(200, &json!({"apps": app.entra().apps}))
}

/// `/_emulator/entra/...`: registrations, key rotation, token settings.
pub fn handle(app: &App, method: &str, path: &str, body: &[u8]) -> Resp {
    match (method, path) {
        ("POST" | "PUT", "/_emulator/entra/apps") => {
            let reg: Registration = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad_request(&format!("invalid app registration: {e}")),
            };
            if !matches!(reg.token_version, 1 | 2) {
                return bad_request("token_version must be 1 or 2");
            }
            let mut entra = app.entra();
            entra.apps.retain(|a| a.app_id_uri != reg.app_id_uri);
            entra.apps.push(reg.clone());
            json(200, &json!(reg))
        }
        ("GET", "/_emulator/entra/apps") => apps_list(app),
        ("DELETE", "/_emulator/entra/apps") => {
            app.entra().apps.clear();
            apps_list(app)
        }
        ("POST", "/_emulator/entra/keys/rotate") => {
            let publish = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("publish").and_then(Value::as_bool))
                .unwrap_or(true);
            let mut entra = app.entra();
            entra.rotate(publish);
            json(200, &entra.keys_state())
        }
        ("GET", "/_emulator/entra/keys") => json(200, &app.entra().keys_state()),
        ("POST" | "PUT", "/_emulator/entra/settings") => {
            match serde_json::from_slice::<Settings>(body) {
                Ok(s) => {
                    app.entra().settings = s.clone();
                    json(200, &json!(s))
                }
                Err(e) => bad_request(&format!("invalid settings: {e}")),
            }
        }
        ("GET", "/_emulator/entra/settings") => json(200, &json!(app.entra().settings)),
        _ => json(
            404,
            &json!({"error": format!("no control endpoint {method} {path}")}),
        ),
    }
}
