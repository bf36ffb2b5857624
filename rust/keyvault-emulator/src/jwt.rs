//! JWT-shaped access tokens signed with HS256 and an emulator-internal key, so that the
//! emulator can validate the tokens it issued (and nobody else can mint them).

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

pub struct TokenKey(hmac::Key);

impl TokenKey {
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("system random");
        TokenKey(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "HS256", "kid": "hg-keyvault-emulator"});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let tag = hmac::sign(&self.0, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Checks the signature and the time window; returns the claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Map<String, Value>, &'static str> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed token");
        };
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| "malformed signature")?;
        hmac::verify(&self.0, format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| "signature validation failed")?;
        let claims = decode_claims(token).ok_or("malformed claims")?;
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or("no exp")?;
        let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
        if now >= exp {
            return Err("token is expired");
        }
        if now + 60 < nbf {
            return Err("token is not yet valid");
        }
        Ok(claims)
    }
}

/// The claims of any 3-part JWT, without checking its signature.
pub fn decode_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (_, Some(c), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(c.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}
