//! The Key Vault secrets data plane: an in-memory store and its REST API (camelCase bodies,
//! epoch-second timestamps, absolute `nextLink` paging, RBAC-style 403s, soft delete).

// Handlers short-circuit with the error response itself (`Result<_, Resp>`); its size is
// irrelevant next to the network round trip.
#![allow(clippy::result_large_err)]

use crate::app::App;
use crate::http::{empty, json, kv_error, query_get, Resp};
use crate::principals::{Action, Principal};
use hyper::Method;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub const RESOURCE: &str = "https://vault.azure.net";
const DEFAULT_API_VERSION: &str = "7.6";
const MAX_PAGE: usize = 25;
const RECOVERABLE_DAYS: i64 = 90;
/// Service limits, from Microsoft's "About Azure Key Vault secrets" and the service's own answer:
/// a value over 25,600 characters gets `400 BadParameter` "Secret is beyond the maximum permitted
/// length of 25600 characters." with innererror `SecretTooLarge` (as `az keyvault secret set`
/// users have reported it, e.g. Azure/azure-cli#5639); a content type holds at most 255
/// characters; an object at most 15 tags of at most 512 characters each (name and value).
pub const MAX_VALUE_CHARS: usize = 25_600;
pub const MAX_CONTENT_TYPE_CHARS: usize = 255;
pub const MAX_TAGS: usize = 15;
pub const MAX_TAG_CHARS: usize = 512;
const RBAC_SCOPE: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/\
                          hg-keyvault-emulator/providers/microsoft.keyvault/vaults/emulator";

#[derive(Debug, Clone)]
struct Version {
    id: String,
    value: String,
    content_type: Option<String>,
    enabled: bool,
    exp: Option<i64>,
    nbf: Option<i64>,
    created: i64,
    updated: i64,
    tags: Option<Map<String, Value>>,
}

#[derive(Debug, Clone)]
struct Secret {
    name: String,
    /// In creation order; the last one is the current version (the list API does not show
    /// this order, see `Route::Versions`).
    versions: Vec<Version>,
}

impl Secret {
    fn current(&self) -> &Version {
        self.versions
            .last()
            .expect("a secret has at least one version")
    }
}

#[derive(Debug)]
struct Deleted {
    secret: Secret,
    deleted_date: i64,
}

/// Secrets by lower-cased name (Key Vault names are case-insensitive).
#[derive(Debug, Default)]
pub struct Store {
    live: BTreeMap<String, Secret>,
    deleted: BTreeMap<String, Deleted>,
}

impl Store {
    pub fn counts(&self) -> Value {
        json!({"secrets": self.live.len(), "deleted_secrets": self.deleted.len()})
    }
}

enum Route<'a> {
    List,
    Set(&'a str),
    Get(&'a str, Option<&'a str>),
    Versions(&'a str),
    Update(&'a str, Option<&'a str>),
    Delete(&'a str),
    ListDeleted,
    GetDeleted(&'a str),
    Recover(&'a str),
    Purge(&'a str),
}

impl Route<'_> {
    fn action(&self) -> Action {
        match self {
            Route::Get(..) => Action::GetSecret,
            Route::List | Route::Versions(_) => Action::ReadMetadata,
            Route::Set(_) => Action::SetSecret,
            Route::Update(..) => Action::Update,
            Route::Delete(_) => Action::Delete,
            Route::ListDeleted | Route::GetDeleted(_) => Action::ReadDeleted,
            Route::Recover(_) => Action::Recover,
            Route::Purge(_) => Action::Purge,
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Route::List | Route::ListDeleted => None,
            Route::Set(n)
            | Route::Get(n, _)
            | Route::Versions(n)
            | Route::Update(n, _)
            | Route::Delete(n)
            | Route::GetDeleted(n)
            | Route::Recover(n)
            | Route::Purge(n) => Some(n),
        }
    }
}

fn route<'a>(method: &Method, path: &'a str) -> Option<Route<'a>> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let version = |v: &'a str| (!v.is_empty()).then_some(v);
    Some(match (method.as_str(), segs.as_slice()) {
        ("GET", ["secrets"] | ["secrets", ""]) => Route::List,
        ("PUT", ["secrets", n] | ["secrets", n, ""]) => Route::Set(n),
        ("GET", ["secrets", n] | ["secrets", n, ""]) => Route::Get(n, None),
        ("GET", ["secrets", n, "versions"]) => Route::Versions(n),
        ("GET", ["secrets", n, v]) => Route::Get(n, version(v)),
        ("PATCH", ["secrets", n]) => Route::Update(n, None),
        ("PATCH", ["secrets", n, v]) => Route::Update(n, version(v)),
        ("DELETE", ["secrets", n]) => Route::Delete(n),
        ("GET", ["deletedsecrets"] | ["deletedsecrets", ""]) => Route::ListDeleted,
        ("GET", ["deletedsecrets", n]) => Route::GetDeleted(n),
        ("POST", ["deletedsecrets", n, "recover"]) => Route::Recover(n),
        ("DELETE", ["deletedsecrets", n]) => Route::Purge(n),
        _ => return None,
    })
}

fn valid_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub fn challenge(app: &App, invalid: bool) -> String {
    let mut c = format!(
        "Bearer authorization=\"{}/{}\", resource=\"{RESOURCE}\"",
        app.base_url, app.tenant_id
    );
    if invalid {
        c.push_str(", error=\"invalid_token\"");
    }
    c
}

fn unauthorized(app: &App, invalid: bool, message: &str) -> Resp {
    let mut resp = kv_error(401, "Unauthorized", message, None);
    crate::http::set_header(&mut resp, "www-authenticate", &challenge(app, invalid));
    resp
}

/// The 403 Key Vault answers with when the caller lacks the data action: the RBAC body, or on a
/// vault that uses access policies the policy body.
pub fn forbidden(app: &App, principal: &Principal, action: Action, name: Option<&str>) -> Resp {
    if app.access_policies() {
        return forbidden_by_policy(app, principal, action);
    }
    let resource = match name {
        Some(n) => format!("{RBAC_SCOPE}/secrets/{n}"),
        None => RBAC_SCOPE.to_string(),
    };
    let message = format!(
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny \
         assignments or role definitions were changed recently, please observe propagation \
         time.\r\nCaller: appid={};oid={};iss=https://sts.windows.net/{}/\r\nAction: '{}'\r\n\
         Resource: '{}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\n\
         DecisionReason: null \r\nVault: emulator;location=westeurope\r\n",
        principal.client_id,
        principal.object_id,
        app.tenant_id,
        action.data_action(),
        resource.to_lowercase(),
    );
    kv_error(403, "Forbidden", &message, Some("ForbiddenByRbac"))
}

/// The 403 of a vault whose permission model is access policies. Message and inner code as the
/// service sends them: "The user, group or application 'appid=...;oid=...;iss=...' does not have
/// secrets get permission on key vault '<vault>;location=<region>'. For help resolving this
/// issue, please see https://go.microsoft.com/fwlink/?linkid=2125287" (Microsoft's AKS
/// troubleshooting page for the Key Vault secrets provider quotes it with innererror
/// `AccessDenied`; current vaults send `ForbiddenByPolicy`, as recorded in public Key Vault
/// emulators' notes of real traffic).
fn forbidden_by_policy(app: &App, principal: &Principal, action: Action) -> Resp {
    let message = format!(
        "The user, group or application 'appid={};oid={};iss=https://sts.windows.net/{}/' does \
         not have secrets {} permission on key vault 'emulator;location=westeurope'. For help \
         resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
        principal.client_id,
        principal.object_id,
        app.tenant_id,
        action.policy_permission(),
    );
    kv_error(403, "Forbidden", &message, Some("ForbiddenByPolicy"))
}

fn not_found(name: &str) -> Resp {
    kv_error(
        404,
        "SecretNotFound",
        &format!(
            "A secret with (name/id) {name} was not found in this key vault. If you recently \
             deleted this secret you may be able to recover it using the correct recovery \
             command. For help resolving this issue, please see \
             https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
        None,
    )
}

fn bad_parameter(message: &str) -> Resp {
    kv_error(400, "BadParameter", message, None)
}

struct Ctx<'a> {
    app: &'a App,
    api_version: String,
    query: &'a str,
}

impl Ctx<'_> {
    fn attributes(&self, v: &Version) -> Value {
        let mut a = json!({
            "enabled": v.enabled,
            "created": v.created,
            "updated": v.updated,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": RECOVERABLE_DAYS,
        });
        if let Some(exp) = v.exp {
            a["exp"] = json!(exp);
        }
        if let Some(nbf) = v.nbf {
            a["nbf"] = json!(nbf);
        }
        a
    }

    /// A SecretBundle (with the value) or SecretItem-like properties (without).
    fn bundle(&self, s: &Secret, v: &Version, with_value: bool, versioned_id: bool) -> Value {
        let id = if versioned_id {
            format!("{}/secrets/{}/{}", self.app.base_url, s.name, v.id)
        } else {
            format!("{}/secrets/{}", self.app.base_url, s.name)
        };
        let mut b = json!({"id": id, "attributes": self.attributes(v)});
        if with_value {
            b["value"] = json!(v.value);
        }
        if let Some(ct) = &v.content_type {
            b["contentType"] = json!(ct);
        }
        if let Some(tags) = &v.tags {
            b["tags"] = Value::Object(tags.clone());
        }
        b
    }

    fn deleted_bundle(&self, d: &Deleted, versioned_id: bool) -> Value {
        let mut b = self.bundle(&d.secret, d.secret.current(), false, versioned_id);
        b["recoveryId"] = json!(format!(
            "{}/deletedsecrets/{}",
            self.app.base_url, d.secret.name
        ));
        b["deletedDate"] = json!(d.deleted_date);
        b["scheduledPurgeDate"] = json!(d.deleted_date + RECOVERABLE_DAYS * 86400);
        b
    }

    /// One page of `items`, with an absolute `nextLink` or `null` on the last page.
    fn page(&self, path: &str, items: Vec<Value>) -> Resp {
        let max = query_get(self.query, "maxresults")
            .and_then(|m| m.parse::<usize>().ok())
            .unwrap_or(MAX_PAGE)
            .clamp(1, MAX_PAGE);
        let skip = query_get(self.query, "$skiptoken")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0);
        let end = (skip + max).min(items.len());
        let next = (end < items.len()).then(|| {
            format!(
                "{}{path}?api-version={}&$skiptoken={end}&maxresults={max}",
                self.app.base_url, self.api_version
            )
        });
        let value: Vec<Value> = items.into_iter().skip(skip).take(max).collect();
        json(200, &json!({"value": value, "nextLink": next}))
    }
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, Resp> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(bad_parameter(
            "The request body is not a valid JSON object.",
        )),
    }
}

/// Applies `contentType`, `tags` and `attributes` (enabled/exp/nbf; `null` clears) from a body.
fn apply_properties(v: &mut Version, body: &Map<String, Value>) -> Result<(), Resp> {
    if let Some(ct) = body.get("contentType") {
        v.content_type = ct.as_str().map(str::to_string);
        if v.content_type
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_CONTENT_TYPE_CHARS)
        {
            // The limit is documented; the service's message text for it is not (ours).
            return Err(bad_parameter(&format!(
                "The content type is beyond the maximum permitted length of \
                 {MAX_CONTENT_TYPE_CHARS} characters."
            )));
        }
    }
    if let Some(tags) = body.get("tags") {
        v.tags = match tags {
            Value::Null => None,
            Value::Object(m) if m.values().all(Value::is_string) => Some(m.clone()),
            _ => return Err(bad_parameter("Tags must be a map of strings.")),
        };
        check_tags(v.tags.as_ref())?;
    }
    if let Some(attrs) = body.get("attributes").and_then(Value::as_object) {
        if let Some(e) = attrs.get("enabled").and_then(Value::as_bool) {
            v.enabled = e;
        }
        for (key, slot) in [("exp", &mut v.exp), ("nbf", &mut v.nbf)] {
            match attrs.get(key) {
                None => {}
                Some(Value::Null) => *slot = None,
                Some(x) => {
                    *slot = Some(x.as_i64().ok_or_else(|| {
                        bad_parameter(&format!("Attribute {key} must be a Unix time in seconds."))
                    })?)
                }
            }
        }
    }
    Ok(())
}

/// At most `MAX_TAGS` tags, names and values at most `MAX_TAG_CHARS` characters. The service
/// answers `400 BadParameter`; the message text is ours (not verified against real traffic).
fn check_tags(tags: Option<&Map<String, Value>>) -> Result<(), Resp> {
    let Some(tags) = tags else { return Ok(()) };
    if tags.len() > MAX_TAGS {
        return Err(bad_parameter(&format!(
            "The number of tags ({}) is beyond the maximum permitted number of {MAX_TAGS}.",
            tags.len()
        )));
    }
    let too_long = |s: &str| s.chars().count() > MAX_TAG_CHARS;
    if tags
        .iter()
        .any(|(k, v)| too_long(k) || v.as_str().is_some_and(too_long))
    {
        return Err(bad_parameter(&format!(
            "A tag name or value is beyond the maximum permitted length of {MAX_TAG_CHARS} \
             characters."
        )));
    }
    Ok(())
}

fn secret_too_large() -> Resp {
    kv_error(
        400,
        "BadParameter",
        &format!("Secret is beyond the maximum permitted length of {MAX_VALUE_CHARS} characters."),
        Some("SecretTooLarge"),
    )
}

fn new_version_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Handles an authenticated-or-not vault request. `auth` is the outcome of checking the
/// bearer token (`None`: no Authorization header).
pub fn handle(
    app: &App,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
    auth: Option<Result<Map<String, Value>, &'static str>>,
) -> Resp {
    let claims = match auth {
        None => {
            return unauthorized(
                app,
                false,
                "AKV10000: Request is missing a Bearer or PoP token.",
            )
        }
        Some(Err(why)) => {
            return unauthorized(app, true, &format!("AKV10032: Invalid token: {why}."))
        }
        Some(Ok(c)) => c,
    };
    let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
    if aud.trim_end_matches('/') != RESOURCE {
        return unauthorized(
            app,
            true,
            &format!("AKV10022: Invalid audience. Expected {RESOURCE}, found: {aud}."),
        );
    }
    let appid = claims.get("appid").and_then(Value::as_str).unwrap_or("");
    let Some(principal) = app.principal_by_client_id(appid) else {
        return unauthorized(app, true, "AKV10032: Invalid issuer.");
    };
    let Some(route) = route(method, path) else {
        return kv_error(
            400,
            "BadParameter",
            &format!(
                "The request URI {path} with method {method} is not supported by this emulator."
            ),
            None,
        );
    };
    if !principal.may(route.action()) {
        return forbidden(app, principal, route.action(), route.name());
    }
    if let Some(name) = route.name() {
        if !valid_name(name) {
            return bad_parameter(&format!("The request URI contains an invalid name: {name}"));
        }
    }
    let ctx = Ctx {
        app,
        api_version: query_get(query, "api-version").unwrap_or_else(|| DEFAULT_API_VERSION.into()),
        query,
    };
    let mut store = app.store.lock().unwrap_or_else(|e| e.into_inner());
    match dispatch(&ctx, &mut store, route, path, body) {
        Ok(r) | Err(r) => r,
    }
}

fn dispatch(
    ctx: &Ctx<'_>,
    store: &mut Store,
    route: Route<'_>,
    path: &str,
    body: &[u8],
) -> Result<Resp, Resp> {
    let now = ctx.app.clock();
    Ok(match route {
        Route::Set(name) => {
            let key = name.to_lowercase();
            if store.deleted.contains_key(&key) {
                return Err(kv_error(
                    409,
                    "Conflict",
                    &format!(
                        "Secret {name} is currently in a deleted but recoverable state, and its \
                         name cannot be reused; in this state, the secret can only be recovered \
                         or purged."
                    ),
                    Some("ObjectIsDeletedButRecoverable"),
                ));
            }
            let body = parse_body(body)?;
            let Some(value) = body.get("value").and_then(Value::as_str) else {
                return Err(bad_parameter(
                    "Property 'value' is required and must be a string.",
                ));
            };
            if value.chars().count() > MAX_VALUE_CHARS {
                return Err(secret_too_large());
            }
            let mut v = Version {
                id: new_version_id(),
                value: value.to_string(),
                content_type: None,
                enabled: true,
                exp: None,
                nbf: None,
                created: now,
                updated: now,
                tags: None,
            };
            apply_properties(&mut v, &body)?;
            let secret = store.live.entry(key).or_insert_with(|| Secret {
                name: name.to_string(),
                versions: Vec::new(),
            });
            secret.versions.push(v);
            json(200, &ctx.bundle(secret, secret.current(), true, true))
        }
        Route::Get(name, version) => {
            let s = store
                .live
                .get(&name.to_lowercase())
                .ok_or_else(|| not_found(name))?;
            let v = match version {
                None => s.current(),
                Some(id) => s
                    .versions
                    .iter()
                    .find(|v| v.id.eq_ignore_ascii_case(id))
                    .ok_or_else(|| not_found(&format!("{name}/{id}")))?,
            };
            if !v.enabled {
                return Err(kv_error(
                    403,
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                    Some("SecretDisabled"),
                ));
            }
            // No check of `exp`/`nbf`: Key Vault returns expired and not-yet-valid secrets with
            // 200; the attributes are informational ("About Azure Key Vault secrets": exp "is
            // for informational purposes only as it informs users of key vault service that a
            // particular secret may not be used"; the same for nbf). Refusing them is the
            // client's job.
            json(200, &ctx.bundle(s, v, true, true))
        }
        Route::Update(name, version) => {
            let body = parse_body(body)?;
            let s = store
                .live
                .get_mut(&name.to_lowercase())
                .ok_or_else(|| not_found(name))?;
            let idx = match version {
                None => s.versions.len() - 1,
                Some(id) => s
                    .versions
                    .iter()
                    .position(|v| v.id.eq_ignore_ascii_case(id))
                    .ok_or_else(|| not_found(&format!("{name}/{id}")))?,
            };
            let mut v = s.versions[idx].clone();
            apply_properties(&mut v, &body)?;
            v.updated = now;
            s.versions[idx] = v;
            json(200, &ctx.bundle(s, &s.versions[idx], false, true))
        }
        Route::List => {
            let items = store
                .live
                .values()
                .map(|s| ctx.bundle(s, s.current(), false, false))
                .collect();
            ctx.page(path.trim_end_matches('/'), items)
        }
        Route::Versions(name) => {
            let s = store
                .live
                .get(&name.to_lowercase())
                .ok_or_else(|| not_found(name))?;
            // Newest first, not in creation order: the service's list order is not creation
            // order, and `created` has one-second resolution, so neither the list's order nor a
            // sort on `created` names the current version (a GET without version does).
            let items = s
                .versions
                .iter()
                .rev()
                .map(|v| ctx.bundle(s, v, false, true))
                .collect();
            ctx.page(path, items)
        }
        Route::Delete(name) => {
            let key = name.to_lowercase();
            let secret = store.live.remove(&key).ok_or_else(|| not_found(name))?;
            let d = Deleted {
                secret,
                deleted_date: now,
            };
            let resp = json(200, &ctx.deleted_bundle(&d, true));
            store.deleted.insert(key, d);
            resp
        }
        Route::ListDeleted => {
            let items = store
                .deleted
                .values()
                .map(|d| ctx.deleted_bundle(d, false))
                .collect();
            ctx.page(path.trim_end_matches('/'), items)
        }
        Route::GetDeleted(name) => {
            let d = store
                .deleted
                .get(&name.to_lowercase())
                .ok_or_else(|| deleted_not_found(name))?;
            json(200, &ctx.deleted_bundle(d, true))
        }
        Route::Recover(name) => {
            let key = name.to_lowercase();
            let d = store
                .deleted
                .remove(&key)
                .ok_or_else(|| deleted_not_found(name))?;
            let resp = json(200, &ctx.bundle(&d.secret, d.secret.current(), false, true));
            store.live.insert(key, d.secret);
            resp
        }
        Route::Purge(name) => {
            store
                .deleted
                .remove(&name.to_lowercase())
                .ok_or_else(|| deleted_not_found(name))?;
            empty(204)
        }
    })
}

fn deleted_not_found(name: &str) -> Resp {
    kv_error(
        404,
        "SecretNotFound",
        &format!("Deleted Secret not found: {name}"),
        None,
    )
}

/// The Key Vault error body an injected status fault answers with.
pub fn fault_error(
    app: &App,
    status: u16,
    retry_after: u64,
    method: &Method,
    path: &str,
    principal: Option<&Principal>,
) -> Resp {
    match (status, principal, route(method, path)) {
        (403, Some(p), Some(r)) => forbidden(app, p, r.action(), r.name()),
        // What Key Vault answers to a revoked or otherwise invalid token: a fresh challenge.
        (401, ..) => unauthorized(app, true, "The access token is invalid. (injected fault)"),
        (429, ..) => kv_error(
            429,
            "Throttled",
            &format!(
                "Request was not allowed because of throttling. Retry after {retry_after} \
                 seconds. (injected fault)"
            ),
            None,
        ),
        (503, ..) => kv_error(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable. (injected fault)",
            None,
        ),
        (s, ..) if s >= 500 => kv_error(
            s,
            "InternalServerError",
            "An unexpected error occurred. (injected fault)",
            None,
        ),
        (s, ..) => kv_error(s, "Forbidden", "Injected fault.", None),
    }
}

/// For tests of this module only: the `Secret` type is private.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_names() {
        assert!(matches!(
            route(&Method::GET, "/secrets/a/"),
            Some(Route::Get("a", None))
        ));
        assert!(matches!(
            route(&Method::GET, "/secrets/a/versions"),
            Some(Route::Versions("a"))
        ));
        assert!(matches!(
            route(&Method::POST, "/deletedsecrets/a/recover"),
            Some(Route::Recover("a"))
        ));
        assert!(route(&Method::POST, "/secrets/a").is_none());
        assert!(valid_name("hg-0123abc"));
        assert!(!valid_name("no_underscore"));
        assert!(!valid_name(&"x".repeat(128)));
    }
}
