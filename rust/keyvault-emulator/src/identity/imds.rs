//! Azure Instance Metadata Service's token endpoint, as an Azure VM sees it at the link-local
//! metadata address, path `/metadata/identity/oauth2/token` (tests serve it there only inside a
//! network namespace of their own: main.rs refuses the listener anywhere else).
//!
//! Sources: Microsoft docs "How to use managed identities for Azure resources on an Azure VM to
//! acquire an access token" (request, sample response, error table: 400 `invalid_request`
//! "Required metadata header not specified" and "Identity not found"); the IMDS REST spec
//! (azure-rest-api-specs `specification/imds`, `IdentityErrorResponse` {error, error_description});
//! azure-identity python `_credentials/imds.py` (GET, `api-version=2018-02-01`, `resource`,
//! selectors `client_id` / `object_id` / `msi_res_id`, header `Metadata: true`).

use super::{imds_style_token, resource_of, select, Selector};
use crate::app::App;
use crate::http::{json, query_get, Resp};
use hyper::HeaderMap;
use serde_json::json;

/// The api-versions the identity endpoint answers (the ones the SDKs and MSAL send).
const API_VERSIONS: [&str; 3] = ["2018-02-01", "2019-08-01", "2021-02-01"];

pub fn error(description: &str) -> Resp {
    json(
        400,
        &json!({"error": "invalid_request", "error_description": description}),
    )
}

pub fn metadata_header_ok(headers: &HeaderMap) -> bool {
    headers
        .get("metadata")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The checks IMDS and the Arc agent (which answers in IMDS's shape) make before anything
/// else: GET only, the `Metadata: true` header, a known api-version, a `resource`. The
/// resource, or the answer that refuses the request.
pub fn checked_resource(
    method: &str,
    query: &str,
    headers: &HeaderMap,
    api_versions: &[&str],
) -> Result<String, Box<Resp>> {
    if method != "GET" {
        return Err(Box::new(json(
            405,
            &json!({"error": "method_not_allowed", "error_description": "Only GET is allowed."}),
        )));
    }
    // The header proves the request did not come through a redirect or a proxy (SSRF guard).
    if !metadata_header_ok(headers) {
        return Err(Box::new(error("Required metadata header not specified")));
    }
    match query_get(query, "api-version") {
        None => {
            return Err(Box::new(error(
                "Required query variable 'api-version' is missing",
            )))
        }
        Some(v) if !api_versions.contains(&v.as_str()) => {
            return Err(Box::new(error(&format!(
                "Api version {v} is not supported"
            ))))
        }
        Some(_) => {}
    }
    query_get(query, "resource")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Box::new(error("Required audience parameter not specified")))
}

pub fn token(
    app: &App,
    method: &str,
    query: &str,
    headers: &HeaderMap,
    lifetime: Option<u64>,
) -> Resp {
    let resource = match checked_resource(method, query, headers, &API_VERSIONS) {
        Ok(resource) => resource,
        Err(refused) => return *refused,
    };
    let selectors: Vec<Selector> = [
        query_get(query, "client_id").map(Selector::ClientId),
        query_get(query, "object_id").map(Selector::ObjectId),
        query_get(query, "msi_res_id")
            .or_else(|| query_get(query, "mi_res_id"))
            .map(Selector::ResourceId),
    ]
    .into_iter()
    .flatten()
    .collect();
    if selectors.len() > 1 {
        return error(
            "Multiple identities specified. Specify only one of client_id, object_id or msi_res_id",
        );
    }
    let selector = selectors.into_iter().next().unwrap_or(Selector::System);
    let Some(principal) = select(app, &selector) else {
        return error("Identity not found");
    };
    imds_style_token(app, principal, &resource_of(&resource), lifetime)
}
