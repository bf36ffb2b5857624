//! Who the vault sees: the link that got the token and the token's claims (read from the JWT,
//! never verified, never printed whole).

use crate::config::CredentialChoice;
use base64::Engine as _;

/// Who the vault sees: the link that got the token and the token's claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The `keyvault.credential` group of the link that succeeded (never `Auto`).
    pub link: CredentialChoice,
    /// The link itself (`azure-vm`, `github-actions`, ...).
    pub link_id: &'static str,
    /// What answered and why it was chosen: `managed identity (Azure VM: SMBIOS asset tag)`.
    pub via: String,
    /// `tid`.
    pub tenant_id: Option<String>,
    /// `appid` (v1 tokens) or `azp` (v2 tokens).
    pub client_id: Option<String>,
    /// `oid`: what role assignments name.
    pub object_id: Option<String>,
}

impl Identity {
    /// Short text for messages: `client id X (object id Y) via LINK`.
    pub fn describe(&self) -> String {
        let client = self.client_id.as_deref().unwrap_or("(unknown client id)");
        match &self.object_id {
            Some(oid) => format!("client id {client} (object id {oid}) via {}", self.link),
            None => format!("client id {client} via {}", self.link),
        }
    }
}

/// The claims of an access token that name the identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// `tid`.
    pub tenant_id: Option<String>,
    /// `appid`, else `azp`.
    pub client_id: Option<String>,
    /// `oid`.
    pub object_id: Option<String>,
    /// `aud`: the API the token is for (an App ID URI or a client id).
    pub audience: Option<String>,
    /// `iss`: `https://sts.windows.net/{tid}/` (v1) or `https://login.microsoftonline.com/{tid}/v2.0`.
    pub issuer: Option<String>,
}

impl Claims {
    /// `v1` or `v2`, from the issuer (a v2 issuer ends in `/v2.0`), as a proxy validating the
    /// token sees it.
    pub fn version(&self) -> Option<&'static str> {
        let iss = self.issuer.as_deref()?;
        Some(if iss.trim_end_matches('/').ends_with("/v2.0") {
            "v2"
        } else {
            "v1"
        })
    }
}

/// Reads `tid`, `appid`/`azp` and `oid` from a JWT's payload (base64url), without verifying
/// anything. `None` if the token is not JWT-shaped.
pub fn decode_claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    parts.next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let claim = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    Some(Claims {
        tenant_id: claim("tid"),
        client_id: claim("appid").or_else(|| claim("azp")),
        object_id: claim("oid"),
        audience: claim("aud"),
        issuer: claim("iss"),
    })
}

/// Key Vault's and the token groups' identity as the store seam reports it.
impl From<Identity> for crate::store::StoreIdentity {
    fn from(i: Identity) -> Self {
        crate::store::StoreIdentity {
            credential: i.link.as_str(),
            link_id: i.link_id,
            via: i.via,
            ids: vec![
                ("tenant_id", i.tenant_id),
                ("client_id", i.client_id),
                ("object_id", i.object_id),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.{}",
            b(r#"{"alg":"RS256","typ":"JWT"}"#),
            b(payload),
            "c2ln"
        )
    }

    #[test]
    fn claims_are_decoded_from_the_jwt_payload() {
        let t = jwt(r#"{"tid":"t-1","appid":"c-1","oid":"o-1","aud":"https://vault.azure.net"}"#);
        assert_eq!(
            decode_claims(&t),
            Some(Claims {
                tenant_id: Some("t-1".into()),
                client_id: Some("c-1".into()),
                object_id: Some("o-1".into()),
                audience: Some("https://vault.azure.net".into()),
                issuer: None,
            })
        );
        // v2 tokens carry azp instead of appid.
        let t = jwt(r#"{"tid":"t","azp":"c-2"}"#);
        assert_eq!(decode_claims(&t).unwrap().client_id.as_deref(), Some("c-2"));
        assert_eq!(decode_claims("not-a-jwt"), None);
        let v1 = jwt(r#"{"iss":"https://sts.windows.net/t/","aud":"api://hg-proxy"}"#);
        assert_eq!(decode_claims(&v1).unwrap().version(), Some("v1"));
        let v2 = jwt(r#"{"iss":"https://login.microsoftonline.com/t/v2.0","aud":"c"}"#);
        assert_eq!(decode_claims(&v2).unwrap().version(), Some("v2"));
        assert_eq!(Claims::default().version(), None);
        assert_eq!(decode_claims("a.!!!.c"), None);
        assert_eq!(
            decode_claims(&format!("x.{}.y", "e30")),
            Some(Claims::default())
        );
    }
}
