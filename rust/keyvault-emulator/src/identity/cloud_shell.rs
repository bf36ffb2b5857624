//! Cloud Shell's local token endpoint, `MSI_ENDPOINT` (`http://localhost:50342/oauth2/token`):
//! a POST with the form field `resource` and the header `Metadata: true`, answered in the IMDS
//! shape. Source: azure-identity python `_credentials/cloud_shell.py`.

use super::imds::{error, metadata_header_ok};
use super::{imds_style_token, resource_of};
use crate::app::App;
use crate::entra::form_value;
use crate::http::{json, Resp};
use hyper::HeaderMap;
use serde_json::json;

pub fn token(
    app: &App,
    method: &str,
    headers: &HeaderMap,
    body: &[u8],
    lifetime: Option<u64>,
) -> Resp {
    if method != "POST" {
        return json(
            405,
            &json!({"error": "method_not_allowed", "error_description": "Only POST is allowed."}),
        );
    }
    if !metadata_header_ok(headers) {
        return error("Required metadata header not specified");
    }
    let Some(resource) = form_value(body, "resource").filter(|r| !r.is_empty()) else {
        return error("Required audience parameter not specified");
    };
    imds_style_token(app, app.managed(), &resource_of(&resource), lifetime)
}
