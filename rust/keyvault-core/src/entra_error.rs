//! Entra ID token endpoint errors, read by the core itself.
//!
//! Entra's error bodies carry `\r\n` inside `error_description` (the Trace ID, Correlation ID and
//! Timestamp lines; Microsoft's own sample: `"AADSTS70011: ... is not valid.\r\nTrace ID:
//! ...\r\nCorrelation ID: ...\r\nTimestamp: 2016-01-09 02:02:12Z"`, with `error`, `error_codes`,
//! `timestamp`, `trace_id`, `correlation_id`, `error_uri`). `azure_identity` 1.0.0 deserializes
//! `error_description` into a borrowed `&str`, which serde cannot do for an escaped string: the
//! user would see a serde message instead of the HTTP status and the AADSTS code. So the
//! per-call policy of every pipeline ([`crate::transport`]) hands error answers of a token
//! endpoint to [`from_response`], and returns the [`EntraError`] instead of the response; the
//! credential chain finds it in the error's source chain.

use std::fmt;

/// An error answer of an Entra ID token endpoint: status, `error`, AADSTS codes, and the first
/// line of the description (sanitized: one line, printable, bounded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntraError {
    pub(crate) status: u16,
    pub(crate) error: String,
    pub(crate) codes: Vec<u64>,
    pub(crate) description: String,
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if !self.error.is_empty() {
            write!(f, " {}", self.error)?;
        }
        // The description normally starts with its own `AADSTSnnnn:`; say the code otherwise.
        let code = self.codes.first().map(|c| format!("AADSTS{c}"));
        match (code, self.description.is_empty()) {
            (Some(code), _) if !self.description.starts_with(&code) => {
                write!(f, ": {code}")?;
                if !self.description.is_empty() {
                    write!(f, ": {}", self.description)?;
                }
                Ok(())
            }
            (_, false) => write!(f, ": {}", self.description),
            (_, true) => Ok(()),
        }
    }
}

impl std::error::Error for EntraError {}

/// Longest description line kept: enough for AADSTS70021, whose first line names the issuer,
/// subject and audience the user compares with the federated credential.
const MAX_DESCRIPTION_CHARS: usize = 400;

/// Whether `url` is a token endpoint of Entra ID (v2.0 or v1): `/{tenant}/oauth2[/v2.0]/token`.
pub(crate) fn is_token_endpoint(url: &url::Url) -> bool {
    let path = url.path().trim_end_matches('/');
    // Entra is https only. Managed identity endpoints share the `/oauth2/token` tail (IMDS and
    // Azure Arc under `/metadata/identity/`, Cloud Shell and App Service over loopback http) and
    // answer in their own ways: Arc's expected 401 challenge must reach its link untouched.
    url.scheme() == "https"
        && !path.starts_with("/metadata/identity/")
        && (path.ends_with("/oauth2/v2.0/token") || path.ends_with("/oauth2/token"))
}

/// The Entra error in an error answer (`status` >= 400) of a token endpoint, if the body is one:
/// a JSON object with a string `error` or an `error_codes` array.
pub(crate) fn from_response(status: u16, body: &[u8]) -> Option<EntraError> {
    if status < 400 {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = json.get("error").and_then(|e| e.as_str());
    let codes: Vec<u64> = json
        .get("error_codes")
        .and_then(|c| c.as_array())
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default();
    if error.is_none() && codes.is_empty() {
        return None;
    }
    let description = json
        .get("error_description")
        .and_then(|d| d.as_str())
        .map(first_line)
        .unwrap_or_default();
    Some(EntraError {
        status,
        error: printable_word(error.unwrap_or_default()),
        codes,
        description,
    })
}

/// The first line of a description, control characters dropped, cut to a bounded length, and
/// anything token-shaped redacted (a description never should carry one; this is the guard).
fn first_line(text: &str) -> String {
    let line = text.split(['\r', '\n']).next().unwrap_or_default().trim();
    let clean: String = line.chars().filter(|c| !c.is_control()).collect();
    let mut out = crate::credential::sanitize_sdk_message(&clean);
    if out == "no details" {
        out.clear();
    }
    if out.chars().count() > MAX_DESCRIPTION_CHARS {
        out = out
            .chars()
            .take(MAX_DESCRIPTION_CHARS - 3)
            .collect::<String>()
            + "...";
    }
    out
}

/// `error` is an OAuth error code (`invalid_client`): keep it only if it looks like one.
fn printable_word(text: &str) -> String {
    if text.len() <= 64 && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        text.to_owned()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real-shaped body (the layout of Microsoft's documented sample error response).
    const INVALID_SECRET: &str = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '0f1ce000-0000-4000-8000-000000000001'.\r\nTrace ID: 255d1aef-8c98-452f-ac51-23d051240864\r\nCorrelation ID: fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7\r\nTimestamp: 2026-11-29 09:02:12Z","error_codes":[7000215],"timestamp":"2026-11-29 09:02:12Z","trace_id":"255d1aef-8c98-452f-ac51-23d051240864","correlation_id":"fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7","error_uri":"https://login.microsoftonline.com/error?code=7000215"}"#;

    #[test]
    fn a_real_shaped_body_gives_status_code_and_first_line() {
        let e = from_response(401, INVALID_SECRET.as_bytes()).unwrap();
        assert_eq!(e.codes, [7000215]);
        let text = e.to_string();
        assert!(
            text.starts_with(
                "HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided."
            ),
            "{text}"
        );
        assert!(!text.contains("Trace ID"), "{text}");
        assert!(!text.contains('\r') && !text.contains('\n'), "{text}");
        assert!(text.chars().count() <= 280, "{text}");
    }

    #[test]
    fn the_sdk_cannot_parse_such_a_body_as_a_borrowed_str() {
        // What azure_identity 1.0.0 does (`error_description: &'a str`): this is why we parse.
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Borrowed<'a> {
            error_description: &'a str,
        }
        assert!(serde_json::from_str::<Borrowed<'_>>(INVALID_SECRET).is_err());
    }

    #[test]
    fn a_code_missing_from_the_description_is_named_and_tokens_are_redacted() {
        let body = br#"{"error":"invalid_request","error_description":"bad eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl here\r\nTrace ID: x","error_codes":[90002]}"#;
        let text = from_response(400, body).unwrap().to_string();
        assert_eq!(
            text,
            "HTTP 400 invalid_request: AADSTS90002: bad [redacted] here"
        );
    }

    #[test]
    fn other_answers_are_not_entra_errors() {
        assert!(from_response(200, INVALID_SECRET.as_bytes()).is_none());
        assert!(from_response(500, b"<html>oops</html>").is_none());
        assert!(from_response(404, br#"{"message":"x"}"#).is_none());
        let weird = from_response(
            400,
            br#"{"error":"no spaces allowed here","error_codes":[1]}"#,
        )
        .unwrap();
        assert_eq!(weird.to_string(), "HTTP 400: AADSTS1");
    }

    #[test]
    fn token_endpoints_are_recognised_by_path() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(is_token_endpoint(&u(
            "https://login.microsoftonline.com/t/oauth2/v2.0/token"
        )));
        assert!(is_token_endpoint(&u("https://127.0.0.1:1/t/oauth2/token")));
        assert!(!is_token_endpoint(&u(
            "https://v.vault.azure.net/secrets/token"
        )));
        // Managed identity endpoints answer in their own ways (Arc's 401 is its challenge).
        for mi in [
            "http://localhost:40342/metadata/identity/oauth2/token",
            "http://169.254.169.254/metadata/identity/oauth2/token",
            "http://localhost:50342/oauth2/token",
            "https://127.0.0.1:1/metadata/identity/oauth2/token",
        ] {
            assert!(!is_token_endpoint(&u(mi)), "{mi}");
        }
    }
}
