//! Entra ID: the v2.0 token endpoint (client secret and client assertion), the OpenID
//! configuration and instance discovery documents MSAL asks for, and the App Service style
//! managed identity endpoint.

use crate::app::App;
use crate::http::{json, new_uuid, now, query_get, Resp};
use crate::jwt::decode_claims;
use crate::principals::Principal;
use hyper::HeaderMap;
use serde_json::{json, Value};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An Entra ID error body as the token endpoint sends it. The shape (and the `\r\n` between the
/// description and its Trace ID / Correlation ID / Timestamp lines) is Microsoft's own sample error
/// response in the Microsoft identity platform's OAuth 2.0 docs (MicrosoftDocs/azure-docs,
/// "Handling error codes in your application" and the auth code flow's "Error response"):
/// `"error_description": "AADSTS70011: ... is not valid.\r\nTrace ID: ...\r\nCorrelation ID:
/// ...\r\nTimestamp: 2016-01-09 02:02:12Z"`, with `error_codes`, `timestamp`, `trace_id`,
/// `correlation_id` and `error_uri`. Those escapes are what clients must be able to parse.
pub(crate) fn aad_error(status: u16, error: &str, code: u32, text: &str) -> Resp {
    let trace_id = new_uuid();
    let correlation_id = new_uuid();
    let timestamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default();
    json(
        status,
        &json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {text}\r\nTrace ID: {trace_id}\r\nCorrelation ID: \
                 {correlation_id}\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// The error an injected status fault answers with on the Entra ID side.
pub fn fault_error(status: u16) -> Resp {
    match status {
        429 => aad_error(
            429,
            "temporarily_unavailable",
            50196,
            "The server terminated an operation because it encountered a client request loop.",
        ),
        s if s >= 500 => aad_error(
            s,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        ),
        s => aad_error(
            s,
            "unauthorized_client",
            700016,
            "The client is not allowed to get tokens (injected fault).",
        ),
    }
}

pub fn form_value(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `https://vault.azure.net/.default` -> `https://vault.azure.net`.
fn resource_from_scopes(scopes: &str) -> Option<String> {
    scopes
        .split_whitespace()
        .find_map(|s| s.strip_suffix("/.default"))
        .map(str::to_string)
}

/// A token of `p` for `resource`: an RS256 token if `resource` is a registered app, the
/// emulator's own kind for Microsoft's first-party resources (the vault checks those itself),
/// AADSTS500011 for anything else. Returns the token, its `expires_on` and its lifetime.
pub(crate) fn issue(
    app: &App,
    p: &Principal,
    resource: &str,
    lifetime: u64,
) -> Result<(String, i64, u64), Box<Resp>> {
    if let Some(issued) = crate::entra_apps::issue(app, p, resource, lifetime) {
        return Ok((issued.token, issued.exp, issued.lifetime));
    }
    if !crate::entra_apps::is_first_party(resource) {
        return Err(Box::new(crate::entra_apps::unknown_resource(app, resource)));
    }
    let iat = now();
    let exp = iat + lifetime as i64;
    let claims = json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{}/", app.tenant_id),
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "tid": app.tenant_id,
        "oid": p.object_id,
        "appid": p.client_id,
        "azp": p.client_id,
        "sub": p.object_id,
        "idtyp": "app",
        "ver": "1.0",
        "uti": new_uuid(),
    });
    Ok((app.key.sign(&claims), exp, lifetime))
}

/// `POST /{tenant}/oauth2/v2.0/token`, grant type client_credentials.
pub fn token(app: &App, tenant: &str, body: &[u8], lifetime: Option<u64>) -> Resp {
    if !tenant.eq_ignore_ascii_case(app.tenant_id) {
        return aad_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    let grant = form_value(body, "grant_type").unwrap_or_default();
    if grant != "client_credentials" {
        return aad_error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let client_id = form_value(body, "client_id").unwrap_or_default();
    let Some(principal) = app.principal_by_client_id(&client_id) else {
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory \
                 '{}'. This can happen if the application has not been installed by the \
                 administrator of the tenant or consented to by any user in the tenant. You \
                 may have sent your authentication request to the wrong tenant.",
                app.tenant_id
            ),
        );
    };
    if let Some(secret) = form_value(body, "client_secret") {
        if secret != principal.client_secret {
            return aad_error(
                401,
                "invalid_client",
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the \
                     request is the client secret value, not the client secret ID, for a secret \
                     added to app '{client_id}'."
                ),
            );
        }
    } else if let Some(assertion) = form_value(body, "client_assertion") {
        let kind = form_value(body, "client_assertion_type").unwrap_or_default();
        if kind != ASSERTION_TYPE || decode_claims(&assertion).is_none() {
            return aad_error(
                401,
                "invalid_client",
                50027,
                "JWT token is invalid or malformed.",
            );
        }
        if let Err(refusal) = crate::federation::check_assertion(app, principal, &assertion) {
            return *refusal;
        }
    } else {
        return aad_error(
            401,
            "invalid_client",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the \
             'client_credentials' grant type.",
        );
    }
    let scope = form_value(body, "scope").unwrap_or_default();
    let Some(resource) = resource_from_scopes(&scope) else {
        return aad_error(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows \
                 must have a scope value with /.default suffixed to the resource identifier \
                 (application ID URI)."
            ),
        );
    };
    let lifetime = lifetime.unwrap_or(app.token_lifetime);
    let (token, _, lifetime) = match issue(app, principal, &resource, lifetime) {
        Ok(issued) => issued,
        Err(refusal) => return *refusal,
    };
    json(
        200,
        &json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }),
    )
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` (`v2`) and
/// `/{tenant}/.well-known/openid-configuration`. As on login.microsoftonline.com, the v1 document
/// names the v1 issuer `https://sts.windows.net/{tenant}/`, the v1 endpoints and the v1 JWKS
/// path; the v2 one the v2 issuer `{authority}/{tenant}/v2.0` (both list the same keys).
pub fn openid_configuration(app: &App, tenant: &str, v2: bool) -> Resp {
    let base = &app.base_url;
    let t = format!("{base}/{tenant}");
    if !v2 {
        return json(
            200,
            &json!({
                "token_endpoint": format!("{t}/oauth2/token"),
                "token_endpoint_auth_methods_supported":
                    ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "jwks_uri": format!("{base}/common/discovery/keys"),
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
                "scopes_supported": ["openid"],
                "issuer": format!("https://sts.windows.net/{tenant}/"),
                "authorization_endpoint": format!("{t}/oauth2/authorize"),
                "end_session_endpoint": format!("{t}/oauth2/logout"),
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
            }),
        );
    }
    json(
        200,
        &json!({
            "token_endpoint": format!("{t}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported":
                ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{t}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{t}/v2.0"),
            "request_uri_parameter_supported": false,
            "authorization_endpoint": format!("{t}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{t}/oauth2/v2.0/devicecode"),
            "end_session_endpoint": format!("{t}/oauth2/v2.0/logout"),
            "kerberos_endpoint": format!("{t}/kerberos"),
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }),
    )
}

/// `GET /{tenant}/discovery/v2.0/keys` and `/{tenant}/discovery/keys`: the keys that sign the
/// tokens of registered apps (the vault's own tokens are HS256 and opaque to clients).
pub fn jwks(app: &App) -> Resp {
    json(200, &app.entra().jwks())
}

/// `GET /common/discovery/instance?api-version=1.1&authorization_endpoint=...`
pub fn instance_discovery(app: &App, query: &str) -> Resp {
    let tenant = query_get(query, "authorization_endpoint")
        .and_then(|e| {
            e.strip_prefix(&format!("{}/", app.base_url))
                .and_then(|rest| rest.split('/').next().map(str::to_string))
        })
        .unwrap_or_else(|| app.tenant_id.to_string());
    let host = app.base_url.trim_start_matches("https://");
    json(
        200,
        &json!({
            "tenant_discovery_endpoint":
                format!("{}/{tenant}/v2.0/.well-known/openid-configuration", app.base_url),
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }),
    )
}

/// The client_id a managed identity request is made for (for logging and fault matching).
pub fn msi_principal(app: &App) -> String {
    app.managed().client_id.to_string()
}

fn msi_error(status: u16, message: &str) -> Resp {
    json(
        status,
        &json!({"statusCode": status, "message": message, "correlationId": new_uuid()}),
    )
}

/// `GET /msi/token?api-version=2019-08-01&resource=...`, App Service 2019-08-01 protocol.
pub fn msi(app: &App, headers: &HeaderMap, query: &str, lifetime: Option<u64>) -> Resp {
    let header = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if header != Some(app.identity_header.as_str()) {
        return msi_error(
            401,
            "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.",
        );
    }
    let Some(resource) = query_get(query, "resource").filter(|r| !r.is_empty()) else {
        return msi_error(400, "The resource parameter is required.");
    };
    let managed = app.managed();
    let client_ok =
        query_get(query, "client_id").is_none_or(|c| c.eq_ignore_ascii_case(managed.client_id));
    let object_ok = ["principal_id", "object_id"]
        .iter()
        .all(|k| query_get(query, k).is_none_or(|o| o.eq_ignore_ascii_case(managed.object_id)));
    if !client_ok || !object_ok {
        return msi_error(
            400,
            "No managed identity found for the specified ClientId/ResourceId/PrincipalId.",
        );
    }
    let resource = resource
        .strip_suffix("/.default")
        .unwrap_or(&resource)
        .to_string();
    let lifetime = lifetime.unwrap_or(app.token_lifetime);
    let (token, exp, _) = match issue(app, managed, &resource, lifetime) {
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
            "client_id": managed.client_id,
        }),
    )
}

/// The claims of a vault request's bearer token, if the emulator issued it and it is valid.
pub fn bearer_claims(
    app: &App,
    headers: &HeaderMap,
) -> Option<Result<serde_json::Map<String, Value>, &'static str>> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))?;
    Some(app.key.verify(token.trim(), now()))
}
