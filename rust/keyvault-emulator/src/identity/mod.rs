//! The managed identity endpoints of Azure hosts, each over plain HTTP on its own listener as the
//! real ones are: IMDS (Azure VM / scale set), Azure Arc's local agent, Cloud Shell, Azure Machine
//! Learning and App Service / Container Apps. Every one issues tokens for the emulator's "managed"
//! principal (system-assigned) or, where the protocol can select one, a user-assigned identity.

pub mod arc;
pub mod azure_ml;
pub mod cloud_shell;
pub mod imds;

use crate::app::App;
use crate::http::{json, Resp};
use crate::principals::Principal;
use serde::Deserialize;
use serde_json::json;
use std::str::FromStr;

/// Which service a plain-HTTP listener plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Imds,
    Arc,
    CloudShell,
    Ml,
    AppService,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Imds,
        Role::Arc,
        Role::CloudShell,
        Role::Ml,
        Role::AppService,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Imds => "imds",
            Role::Arc => "arc",
            Role::CloudShell => "cloudshell",
            Role::Ml => "ml",
            Role::AppService => "appservice",
        }
    }

    /// The URL path of the role's token endpoint (what the environment variables point at).
    pub fn token_path(self) -> &'static str {
        match self {
            Role::Imds | Role::Arc => "/metadata/identity/oauth2/token",
            Role::CloudShell => "/oauth2/token",
            Role::Ml => "/MSI/auth",
            Role::AppService => "/msi/token",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!("unknown listener role {s:?} (imds, arc, cloudshell, ml, appservice)")
            })
    }
}

/// The identities assigned to the emulated host, set with `POST /_emulator/identities`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostIdentities {
    #[serde(default = "yes")]
    pub system_assigned: bool,
    /// Names of emulator principals attached as user-assigned identities.
    #[serde(default)]
    pub user_assigned: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Default for HostIdentities {
    fn default() -> Self {
        HostIdentities {
            system_assigned: true,
            user_assigned: vec!["user-assigned".to_string()],
        }
    }
}

/// The ARM resource id of a user-assigned identity (what `msi_res_id` / `mi_res_id` name).
pub fn resource_id(p: &Principal) -> String {
    format!(
        "/subscriptions/00000000-0000-4000-8000-00000000c1c1/resourcegroups/hg-keyvault/providers/\
         Microsoft.ManagedIdentity/userAssignedIdentities/{}",
        p.name
    )
}

/// The selector a request carries: none (system-assigned), or one id of a user-assigned identity.
pub enum Selector {
    System,
    ClientId(String),
    ObjectId(String),
    ResourceId(String),
}

/// Finds the identity a request selects among those assigned to the host.
pub fn select<'a>(app: &'a App, selector: &Selector) -> Option<&'a Principal> {
    let host = app.host_identities();
    match selector {
        Selector::System => host.system_assigned.then(|| app.managed()),
        other => host
            .user_assigned
            .iter()
            .filter_map(|name| app.principals.iter().find(|p| p.name == *name))
            .find(|p| match other {
                Selector::ClientId(id) => p.client_id.eq_ignore_ascii_case(id),
                Selector::ObjectId(id) => p.object_id.eq_ignore_ascii_case(id),
                Selector::ResourceId(id) => resource_id(p).eq_ignore_ascii_case(id),
                Selector::System => false,
            }),
    }
}

/// `resource` as the endpoints accept it (a trailing `/.default` scope suffix is tolerated).
pub fn resource_of(value: &str) -> String {
    value.strip_suffix("/.default").unwrap_or(value).to_string()
}

/// The token response of the IMDS family (IMDS, Arc, Cloud Shell): every number a string.
/// Source: Microsoft docs "How to use managed identities for Azure resources on an Azure VM to
/// acquire an access token" (sample response) and the IMDS REST spec (`IdentityTokenResponse`).
pub fn imds_style_token(app: &App, p: &Principal, resource: &str, lifetime: Option<u64>) -> Resp {
    let lifetime = lifetime.unwrap_or(app.token_lifetime);
    let (token, exp, lifetime) = match crate::entra::issue(app, p, resource, lifetime) {
        Ok(issued) => issued,
        Err(refusal) => return *refusal,
    };
    json(
        200,
        &json!({
            "access_token": token,
            "refresh_token": "",
            "client_id": p.client_id,
            "expires_in": lifetime.to_string(),
            "expires_on": exp.to_string(),
            "ext_expires_in": lifetime.to_string(),
            "not_before": (exp - lifetime as i64).to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    )
}

/// Dispatches a request that reached a plain-HTTP listener of `role`.
pub fn handle(
    app: &App,
    role: Role,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    lifetime: Option<u64>,
) -> Resp {
    let (method, path) = (parts.method.as_str(), parts.uri.path());
    let (query, headers) = (parts.uri.query().unwrap_or(""), &parts.headers);
    if path != role.token_path() {
        return json(
            404,
            &json!({"error": "not_found", "error_description": format!("No {} endpoint {method} {path}.", role.name())}),
        );
    }
    match role {
        Role::Imds => imds::token(app, method, query, headers, lifetime),
        Role::Arc => arc::token(app, method, query, headers, lifetime),
        Role::CloudShell => cloud_shell::token(app, method, headers, body, lifetime),
        Role::Ml => azure_ml::token(app, method, query, headers, lifetime),
        Role::AppService if method == "GET" => crate::entra::msi(app, headers, query, lifetime),
        Role::AppService => json(
            405,
            &json!({"statusCode": 405, "message": "Method not allowed."}),
        ),
    }
}
