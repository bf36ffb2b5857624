//! Azure Machine Learning compute's token endpoint, `MSI_ENDPOINT` with `MSI_SECRET`: a GET with
//! `api-version=2017-09-01`, `resource` and optionally `clientid`, the header `secret`. It answers
//! in App Service's 2017-09-01 shape except that `expires_on` is epoch seconds (azure-identity
//! python `_credentials/azure_ml.py`, `_parse_app_service_expires_on`: "Azure ML ... returns
//! expires_on as an integer"; sent here as a numeric string, which that parser accepts too).

use super::{resource_of, select, Selector};
use crate::app::App;
use crate::http::{json, new_uuid, query_get, Resp};
use hyper::HeaderMap;
use serde_json::json;

fn error(status: u16, message: &str) -> Resp {
    json(
        status,
        &json!({"statusCode": status, "message": message, "correlationId": new_uuid()}),
    )
}

pub fn token(
    app: &App,
    method: &str,
    query: &str,
    headers: &HeaderMap,
    lifetime: Option<u64>,
) -> Resp {
    if method != "GET" {
        return error(405, "Method not allowed.");
    }
    let secret = headers.get("secret").and_then(|v| v.to_str().ok());
    if secret != Some(app.msi_secret.as_str()) {
        return error(
            401,
            "The secret header is missing or does not match MSI_SECRET.",
        );
    }
    if query_get(query, "api-version").as_deref() != Some("2017-09-01") {
        return error(400, "The api-version parameter must be 2017-09-01.");
    }
    let Some(resource) = query_get(query, "resource").filter(|r| !r.is_empty()) else {
        return error(400, "The resource parameter is required.");
    };
    let selector = match query_get(query, "clientid") {
        Some(id) => Selector::ClientId(id),
        None => Selector::System,
    };
    let Some(p) = select(app, &selector) else {
        return error(400, "No managed identity found for the specified ClientId.");
    };
    let resource = resource_of(&resource);
    let lifetime = lifetime.unwrap_or(app.token_lifetime);
    let (token, exp, _) = match crate::entra::issue(app, p, &resource, lifetime) {
        Ok(issued) => issued,
        Err(refusal) => return *refusal,
    };
    json(
        200,
        &json!({
            "access_token": token,
            "expires_on": exp.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": p.client_id,
        }),
    )
}
