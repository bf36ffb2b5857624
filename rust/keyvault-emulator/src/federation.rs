//! Federated identity credentials: Entra accepts a client assertion from an external issuer only
//! when one of the app's federated credentials names exactly its issuer, subject and one of its
//! audiences (case-sensitive since 2025), and the signature checks against the issuer's JWKS.
//! Sources: Microsoft Entra docs "Workload identity federation" and "federated identity
//! credential considerations"; the AADSTS70021 body below is the one Entra answered in
//! Azure/azure-workload-identity issue #616 (400, `invalid_request`). Newer tenants may answer
//! AADSTS700213 for a subject-only mismatch; the emulator keeps the one code the issue names.

use crate::app::App;
use crate::entra::aad_error;
use crate::http::{now, Resp};
use crate::principals::Principal;
use crate::rs256::{self, VerifyError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const DOCS: &str =
    "https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FederatedCredential {
    /// The emulator principal (app) the credential belongs to, by name.
    pub principal: String,
    pub issuer: String,
    pub subject: String,
    #[serde(default = "default_audiences")]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub name: String,
}

fn default_audiences() -> Vec<String> {
    vec![crate::ci_oidc::ENTRA_AUDIENCE.to_string()]
}

/// Parses a JSON list of federated credentials (a single object is accepted too).
pub fn parse(body: &[u8], app: &App) -> Result<Vec<FederatedCredential>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let list = match value {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        _ => return Err("expected a JSON list of federated credentials".into()),
    };
    list.into_iter()
        .map(|v| {
            let fc: FederatedCredential = serde_json::from_value(v)
                .map_err(|e| format!("invalid federated credential: {e}"))?;
            if !app.principals.iter().any(|p| p.name == fc.principal) {
                return Err(format!("no principal named {:?}", fc.principal));
            }
            Ok(fc)
        })
        .collect()
}

fn text(claims: &Map<String, Value>, name: &str) -> String {
    match claims.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

fn audiences(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn malformed() -> Box<Resp> {
    Box::new(aad_error(
        401,
        "invalid_client",
        50027,
        "JWT token is invalid or malformed.",
    ))
}

/// Checks a client assertion presented for `principal`; `Err` is Entra's refusal.
/// (The refusal is boxed: a response is large for an `Err`.)
pub fn check_assertion(app: &App, principal: &Principal, assertion: &str) -> Result<(), Box<Resp>> {
    let claims = crate::jwt::decode_claims(assertion).ok_or_else(malformed)?;
    let (iss, sub) = (text(&claims, "iss"), text(&claims, "sub"));
    let auds = audiences(&claims);
    let matched = app.federated().iter().any(|fc| {
        fc.principal == principal.name
            && fc.issuer == iss
            && fc.subject == sub
            && auds.iter().any(|a| fc.audiences.contains(a))
    });
    if !matched {
        return Err(Box::new(aad_error(
            400,
            "invalid_request",
            70021,
            &format!(
                "No matching federated identity record found for presented assertion. \
                 Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: \
                 '{}'. {DOCS}",
                text(&claims, "aud")
            ),
        )));
    }
    // Entra fetches the issuer's `/.well-known/openid-configuration` and its `jwks_uri`; the
    // emulator's issuers answer those same documents, so it asks them directly.
    let jwks = app.ci.jwks_for(&app.base_url, &iss).ok_or_else(|| {
        Box::new(aad_error(
            400,
            "invalid_request",
            700211,
            &format!("No matching federated identity record found for presented assertion issuer '{iss}'."),
        ))
    })?;
    match rs256::verify(assertion, &jwks) {
        Ok(_) => {}
        Err(VerifyError::Malformed) => return Err(malformed()),
        Err(e) => {
            let reason = match e {
                VerifyError::UnknownKey(kid) => format!("The key was not found., Key id: '{kid}'"),
                VerifyError::Algorithm(alg) => format!("Unsupported algorithm '{alg}'"),
                _ => "The signature is invalid.".to_string(),
            };
            return Err(Box::new(aad_error(
                401,
                "invalid_client",
                50013,
                &format!("Assertion failed signature validation. [Reason - {reason}]"),
            )));
        }
    }
    let t = now();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
    // Entra allows five minutes of clock skew.
    if t >= exp + 300 || t + 300 < nbf {
        return Err(Box::new(aad_error(
            400,
            "invalid_client",
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {t}, \
                 assertion valid from {nbf}, expiry time of assertion {exp}."
            ),
        )));
    }
    Ok(())
}
