//! RS256 JWTs as real identity providers issue them: an RSA signing key with a `kid`, its JWK for
//! the issuer's JWKS document, and verification of a token against a JWKS (what Entra does with a
//! federated assertion). Shared by the CI OIDC issuers and Entra's tokens for registered apps
//! (entra_apps.rs).

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

pub struct SigningKey {
    pair: KeyPair,
    kid: String,
}

impl SigningKey {
    /// A fresh 2048-bit key (GitHub, GitLab and Entra all sign with RSA 2048 and RS256).
    pub fn generate() -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        // An opaque kid, as the real issuers use (GitHub: a thumbprint; Entra: x5t-like).
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            pair.public_key()
                .modulus()
                .big_endian_without_leading_zero(),
        );
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..20]);
        SigningKey { pair, kid }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (RFC 7517), as found in a JWKS document's `keys`.
    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// `header.claims.signature` with header `{"alg":"RS256","typ":"JWT","kid":...}`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .expect("RSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// A JWKS document: `{"keys": [jwk, ...]}`.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Value {
    json!({"keys": keys.into_iter().map(SigningKey::jwk).collect::<Vec<_>>()})
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    Malformed,
    /// The header names another algorithm than RS256 (e.g. `none` or HS256).
    Algorithm(String),
    /// No key of the JWKS has the token's `kid`.
    UnknownKey(String),
    Signature,
}

fn segment(text: &str) -> Result<Map<String, Value>, VerifyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| VerifyError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(VerifyError::Malformed),
    }
}

/// Checks `token`'s RS256 signature against the key of `jwks` that has its `kid`, and returns
/// its claims. Time and audience checks are the caller's (they differ per relying party).
pub fn verify(token: &str, jwks: &Value) -> Result<Map<String, Value>, VerifyError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        return Err(VerifyError::Malformed);
    };
    let header = segment(h)?;
    let claims = segment(c)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "RS256" {
        return Err(VerifyError::Algorithm(alg.to_string()));
    }
    let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
    let key = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"].as_str() == Some(kid) && k["kty"] == "RSA")
        .ok_or_else(|| VerifyError::UnknownKey(kid.to_string()))?;
    let component = |name: &str| {
        key[name]
            .as_str()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or(VerifyError::Malformed)
    };
    let public = RsaPublicKeyComponents {
        n: component("n")?,
        e: component("e")?,
    };
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| VerifyError::Malformed)?;
    public
        .verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            format!("{h}.{c}").as_bytes(),
            &sig,
        )
        .map_err(|_| VerifyError::Signature)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_against_its_jwks_and_nothing_else() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let token = key.sign(&json!({"sub": "repo:o/r:ref:refs/heads/main"}));
        let claims = verify(&token, &jwks([&key])).unwrap();
        assert_eq!(claims["sub"], "repo:o/r:ref:refs/heads/main");
        assert_eq!(
            verify(&token, &jwks([&other])),
            Err(VerifyError::UnknownKey(key.kid().to_string()))
        );
        // Same kid, other key: the signature must not check.
        let mut forged = other.jwk();
        forged["kid"] = json!(key.kid());
        assert_eq!(
            verify(&token, &json!({"keys": [forged]})),
            Err(VerifyError::Signature)
        );
        let (head, rest) = token.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let tampered = format!(
            "{head}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(r#"{"sub":"repo:o/r:ref:refs/heads/evil"}"#)
        );
        assert_eq!(
            verify(&tampered, &jwks([&key])),
            Err(VerifyError::Signature)
        );
    }

    #[test]
    fn unsigned_and_hmac_tokens_are_refused() {
        let key = SigningKey::generate();
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode("{}")
        );
        assert_eq!(
            verify(&none, &jwks([&key])),
            Err(VerifyError::Algorithm("none".into()))
        );
        assert_eq!(verify("a.b", &jwks([&key])), Err(VerifyError::Malformed));
    }
}
