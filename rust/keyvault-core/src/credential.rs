//! The credential chain, composed here because the Rust SDK has no DefaultAzureCredential:
//! environment -> workload identity -> managed identity -> Azure CLI, each link tried only
//! when its inputs exist. The chain remembers which link succeeded and the identity of the
//! token it got (tenant, client and object ids, read from the JWT claims, never verified,
//! never printed whole).
//!
//! The environment is an explicit [`CredentialEnv`] snapshot, not the process environment,
//! so that link selection is a pure function (and tests don't race on `setenv`).

use crate::config::CredentialChoice;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{self, TransportFailure};
use async_trait::async_trait;
use azure_core::{
    cloud::{CloudConfiguration, CustomConfiguration},
    credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions},
    http::{ClientOptions, Method, Pipeline, PipelineSendOptions, Request},
    time::OffsetDateTime,
};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, Executor, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use base64::Engine as _;
use std::{
    collections::BTreeMap,
    ffi::OsStr,
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

/// Environment variables the chain reads.
pub const ENV_NAMES: &[&str] = &[
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "PATH",
    // Where `az` keeps its profile: the token cache key changes when `az login` changes it.
    "AZURE_CONFIG_DIR",
    "HOME",
];

/// Values never shown, not even in `Debug`.
const SENSITIVE_ENV: &[&str] = &["AZURE_CLIENT_SECRET", "IDENTITY_HEADER"];

const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";

/// A snapshot of the environment variables the chain reads. Empty values count as unset.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CredentialEnv {
    vars: BTreeMap<String, String>,
}

impl CredentialEnv {
    /// The current process's values of [`ENV_NAMES`].
    pub fn from_process() -> Self {
        Self::from_pairs(
            ENV_NAMES
                .iter()
                .filter_map(|name| std::env::var(name).ok().map(|v| (*name, v))),
        )
    }

    /// From explicit pairs (tests, or a caller that sanitised its environment).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A variable's value, `None` if unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Sets (or, with an empty value, effectively unsets) a variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    fn missing<'a>(&self, names: &[&'a str]) -> Vec<&'a str> {
        names
            .iter()
            .copied()
            .filter(|n| self.get(n).is_none())
            .collect()
    }
}

impl fmt::Debug for CredentialEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.vars {
            if SENSITIVE_ENV.contains(&k.as_str()) {
                m.entry(k, &"****");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

/// Who the vault sees: the link that got the token and the token's claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The link that succeeded (never `Auto`).
    pub link: CredentialChoice,
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
    })
}

/// What the chain will do with one link, decided from the environment alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkPlan {
    /// Client secret from the environment.
    ClientSecret {
        /// `AZURE_TENANT_ID`.
        tenant_id: String,
        /// `AZURE_CLIENT_ID`.
        client_id: String,
    },
    /// Federated token file.
    WorkloadIdentity {
        /// `AZURE_TENANT_ID`.
        tenant_id: String,
        /// `AZURE_CLIENT_ID`.
        client_id: String,
        /// `AZURE_FEDERATED_TOKEN_FILE`.
        token_file: PathBuf,
    },
    /// App Service / container managed identity endpoint.
    ManagedIdentityEndpoint {
        /// `IDENTITY_ENDPOINT`.
        endpoint: String,
        /// `AZURE_CLIENT_ID`, for a user-assigned identity.
        client_id: Option<String>,
    },
    /// Plain IMDS (169.254.169.254): only when managed identity is pinned.
    ManagedIdentityImds {
        /// `AZURE_CLIENT_ID`, for a user-assigned identity.
        client_id: Option<String>,
    },
    /// `az account get-access-token`, `az` found at this path.
    AzureCli {
        /// The `az` that will run.
        az: PathBuf,
    },
    /// Not tried; why.
    Skip(String),
    /// Inputs exist but this build cannot use them; why (reported, counts as a failure).
    Unsupported(String),
}

/// One link of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedLink {
    /// Which link.
    pub link: CredentialChoice,
    /// What will happen.
    pub plan: LinkPlan,
}

/// The links for `choice`, in chain order, with what each will do given `env`.
pub fn plan(choice: CredentialChoice, env: &CredentialEnv) -> Vec<PlannedLink> {
    let links: &[CredentialChoice] = match choice {
        CredentialChoice::Auto => &[
            CredentialChoice::Environment,
            CredentialChoice::WorkloadIdentity,
            CredentialChoice::ManagedIdentity,
            CredentialChoice::AzureCli,
        ],
        CredentialChoice::Environment => &[CredentialChoice::Environment],
        CredentialChoice::WorkloadIdentity => &[CredentialChoice::WorkloadIdentity],
        CredentialChoice::ManagedIdentity => &[CredentialChoice::ManagedIdentity],
        CredentialChoice::AzureCli => &[CredentialChoice::AzureCli],
    };
    let pinned = choice != CredentialChoice::Auto;
    links
        .iter()
        .map(|&link| PlannedLink {
            link,
            plan: plan_link(link, env, pinned),
        })
        .collect()
}

fn not_set(names: &[&str]) -> String {
    let verb = if names.len() == 1 { "is" } else { "are" };
    format!("{} {verb} not set", names.join(", "))
}

fn plan_link(link: CredentialChoice, env: &CredentialEnv, pinned: bool) -> LinkPlan {
    let owned = |n: &str| env.get(n).unwrap_or_default().to_owned();
    match link {
        CredentialChoice::Environment => {
            let base = env.missing(&["AZURE_TENANT_ID", "AZURE_CLIENT_ID"]);
            let has_secret = env.get("AZURE_CLIENT_SECRET").is_some();
            let has_cert = env.get("AZURE_CLIENT_CERTIFICATE_PATH").is_some();
            if base.is_empty() && has_secret {
                LinkPlan::ClientSecret {
                    tenant_id: owned("AZURE_TENANT_ID"),
                    client_id: owned("AZURE_CLIENT_ID"),
                }
            } else if base.is_empty() && has_cert {
                LinkPlan::Unsupported(
                    "AZURE_CLIENT_CERTIFICATE_PATH is set, but certificate credentials are not supported \
                     (azure_identity 1.0.0 needs OpenSSL for them); use AZURE_CLIENT_SECRET or workload identity"
                        .to_owned(),
                )
            } else {
                let mut missing = base;
                if !has_secret {
                    missing.push("AZURE_CLIENT_SECRET");
                }
                LinkPlan::Skip(not_set(&missing))
            }
        }
        CredentialChoice::WorkloadIdentity => {
            let missing = env.missing(&[
                "AZURE_FEDERATED_TOKEN_FILE",
                "AZURE_TENANT_ID",
                "AZURE_CLIENT_ID",
            ]);
            if missing.is_empty() {
                LinkPlan::WorkloadIdentity {
                    tenant_id: owned("AZURE_TENANT_ID"),
                    client_id: owned("AZURE_CLIENT_ID"),
                    token_file: PathBuf::from(owned("AZURE_FEDERATED_TOKEN_FILE")),
                }
            } else {
                LinkPlan::Skip(not_set(&missing))
            }
        }
        CredentialChoice::ManagedIdentity => {
            let client_id = env.get("AZURE_CLIENT_ID").map(str::to_owned);
            let missing = env.missing(&["IDENTITY_ENDPOINT", "IDENTITY_HEADER"]);
            if missing.is_empty() {
                LinkPlan::ManagedIdentityEndpoint {
                    endpoint: owned("IDENTITY_ENDPOINT"),
                    client_id,
                }
            } else if pinned {
                LinkPlan::ManagedIdentityImds { client_id }
            } else {
                LinkPlan::Skip(format!(
                    "{} (IMDS is only tried when keyvault.credential = managed-identity)",
                    not_set(&missing)
                ))
            }
        }
        CredentialChoice::AzureCli => match find_on_path("az", env.get("PATH")) {
            Some(az) => LinkPlan::AzureCli { az },
            None => LinkPlan::Skip("az is not on PATH".to_owned()),
        },
        CredentialChoice::Auto => LinkPlan::Skip("auto is not a link".to_owned()),
    }
}

fn find_on_path(program: &str, path: Option<&str>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// The authority host from `AZURE_AUTHORITY_HOST` (https only), else the public cloud.
pub fn authority_host(env: &CredentialEnv) -> Result<String> {
    let Some(host) = env.get("AZURE_AUTHORITY_HOST") else {
        return Ok(PUBLIC_AUTHORITY.to_owned());
    };
    let ok = url::Url::parse(host)
        .map(|u| u.scheme() == "https" && u.host_str().is_some())
        .unwrap_or(false);
    if !ok {
        return Err(Error::bad_config(format!(
            "AZURE_AUTHORITY_HOST '{}' is not an https URL",
            host.escape_debug()
        ))
        .with_hint(
            "set it to an https authority such as https://login.microsoftonline.com, or unset it",
        ));
    }
    Ok(host.trim_end_matches('/').to_owned())
}

/// How one link ended, for the "all links failed" message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Which link.
    pub link: CredentialChoice,
    /// `skipped: ...`, `failed: ...` or `unsupported: ...`.
    pub outcome: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailureClass {
    Skipped,
    Unreachable,
    Other,
}

enum Ready {
    Credential(Arc<dyn TokenCredential>),
    /// Planned but could not be built (e.g. the token file is unreadable).
    Broken(String),
    Skip(String),
    Unsupported(String),
}

struct Link {
    link: CredentialChoice,
    ready: Ready,
}

#[derive(Default)]
struct ChainState {
    selected: Option<usize>,
    identity: Option<Identity>,
}

/// The chain: a `TokenCredential` that tries its links in order and sticks to the first that
/// works.
pub struct CredentialChain {
    choice: CredentialChoice,
    links: Vec<Link>,
    state: Mutex<ChainState>,
}

impl fmt::Debug for CredentialChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialChain")
            .field("choice", &self.choice)
            .field(
                "links",
                &self
                    .links
                    .iter()
                    .map(|l| l.link.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl CredentialChain {
    /// Builds the chain for `choice` from `env`; every SDK credential gets `client_options`
    /// (the store's transport, retry and User-Agent policies).
    pub(crate) fn new(
        choice: CredentialChoice,
        env: &CredentialEnv,
        client_options: &ClientOptions,
    ) -> Result<Self> {
        let planned = plan(choice, env);
        let needs_authority = planned.iter().any(|p| {
            matches!(
                p.plan,
                LinkPlan::ClientSecret { .. } | LinkPlan::WorkloadIdentity { .. }
            )
        });
        let mut options = client_options.clone();
        if needs_authority {
            // Always set the cloud: otherwise the SDK reads AZURE_AUTHORITY_HOST from the process
            // environment, not from `env`.
            let mut custom = CustomConfiguration::default();
            custom.authority_host = authority_host(env)?;
            options.cloud = Some(Arc::new(CloudConfiguration::Custom(custom)));
        }
        let links = planned
            .into_iter()
            .map(|p| Link {
                link: p.link,
                ready: build_link(p.plan, env, &options),
            })
            .collect();
        Ok(Self {
            choice,
            links,
            state: Mutex::new(ChainState::default()),
        })
    }

    /// The identity of the last token obtained, if any.
    pub fn identity(&self) -> Option<Identity> {
        self.state.lock().ok().and_then(|s| s.identity.clone())
    }

    /// The link that succeeded, if any.
    pub fn selected_link(&self) -> Option<CredentialChoice> {
        let state = self.state.lock().ok()?;
        state.selected.map(|i| self.links[i].link)
    }

    /// Takes a token that `link` got earlier (the token cache) as if this chain had got it:
    /// the identity shown by `hg vault` and named in errors is the token's.
    pub(crate) fn adopt(&self, link: CredentialChoice, token: &AccessToken) {
        if let Some(index) = self.links.iter().position(|l| l.link == link) {
            self.remember(index, token);
        }
    }

    fn remember(&self, index: usize, token: &AccessToken) {
        let claims = decode_claims(token.token.secret()).unwrap_or_default();
        if let Ok(mut state) = self.state.lock() {
            state.selected = Some(index);
            state.identity = Some(Identity {
                link: self.links[index].link,
                tenant_id: claims.tenant_id,
                client_id: claims.client_id,
                object_id: claims.object_id,
            });
        }
    }

    async fn try_links(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> std::result::Result<AccessToken, Error> {
        let selected = self.state.lock().ok().and_then(|s| s.selected);
        let mut attempts = Vec::new();
        let mut classes = Vec::new();
        for (index, link) in self.links.iter().enumerate() {
            if selected.is_some_and(|s| s != index) {
                continue;
            }
            let (outcome, class) = match &link.ready {
                Ready::Skip(why) => (format!("skipped: {why}"), FailureClass::Skipped),
                Ready::Unsupported(why) => (format!("unsupported: {why}"), FailureClass::Other),
                Ready::Broken(why) => (format!("failed: {why}"), FailureClass::Other),
                Ready::Credential(cred) => match cred.get_token(scopes, options.clone()).await {
                    Ok(token) => {
                        self.remember(index, &token);
                        return Ok(token);
                    }
                    Err(err) => {
                        let failure = LinkFailure::from_sdk(&err);
                        if let LinkFailure::Fatal(e) = failure {
                            // Throttling says how long to wait; falling through would hide it.
                            return Err(e);
                        }
                        let class = if matches!(failure, LinkFailure::Unreachable(_)) {
                            FailureClass::Unreachable
                        } else {
                            FailureClass::Other
                        };
                        (format!("failed: {}", failure.text()), class)
                    }
                },
            };
            attempts.push(Attempt {
                link: link.link,
                outcome,
            });
            classes.push(class);
        }
        Err(self.all_failed(&attempts, &classes))
    }

    fn all_failed(&self, attempts: &[Attempt], classes: &[FailureClass]) -> Error {
        let lines: Vec<String> = attempts
            .iter()
            .map(|a| format!("  {}: {}", a.link, a.outcome))
            .collect();
        let tried: Vec<&FailureClass> = classes
            .iter()
            .filter(|c| **c != FailureClass::Skipped)
            .collect();
        let kind = if !tried.is_empty() && tried.iter().all(|c| **c == FailureClass::Unreachable) {
            ErrorKind::Unreachable
        } else {
            ErrorKind::Unauthenticated
        };
        let links = lines.join("\n");
        // The message's format strings stay inside the call: the drift test of
        // docs/troubleshooting.md reads them from here.
        Error::new(
            kind,
            if self.choice == CredentialChoice::Auto {
                format!("no Azure credential could get a token; tried:\n{links}")
            } else {
                format!(
                    "the {} credential could not get a token; tried:\n{links}",
                    self.choice
                )
            },
        )
        .with_hint(match self.choice {
            CredentialChoice::Auto => {
                "run `az login`, or set AZURE_TENANT_ID/AZURE_CLIENT_ID with AZURE_CLIENT_SECRET (service principal) \
                 or AZURE_FEDERATED_TOKEN_FILE (workload identity), or run where a managed identity is available"
            }
            CredentialChoice::Environment => {
                "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET of a service principal that can use the vault"
            }
            CredentialChoice::WorkloadIdentity => {
                "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE (a federated credential of that app)"
            }
            CredentialChoice::ManagedIdentity => {
                "run on an Azure resource with a managed identity (IDENTITY_ENDPOINT/IDENTITY_HEADER or IMDS), \
                 or choose another keyvault.credential"
            }
            CredentialChoice::AzureCli => "install the Azure CLI and run `az login`",
        })
    }
}

/// The chain's failure travels through the SDK inside its error; the store finds it again.
#[derive(Debug)]
pub(crate) struct ChainFailure(pub(crate) Error);

impl fmt::Display for ChainFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ChainFailure {}

#[async_trait]
impl TokenCredential for CredentialChain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.try_links(scopes, options).await.map_err(|e| {
            azure_core::Error::new(azure_core::error::ErrorKind::Credential, ChainFailure(e))
        })
    }
}

enum LinkFailure {
    Unreachable(String),
    Other(String),
    Fatal(Error),
}

impl LinkFailure {
    fn text(&self) -> String {
        match self {
            LinkFailure::Unreachable(t) | LinkFailure::Other(t) => t.clone(),
            LinkFailure::Fatal(e) => e.message().to_owned(),
        }
    }

    fn from_sdk(err: &azure_core::Error) -> LinkFailure {
        let mut found: Option<LinkFailure> = None;
        let mut status = None;
        transport::walk_errors(err, &mut |e| {
            if found.is_some() {
                return;
            }
            if let Some(core) = e.downcast_ref::<Error>() {
                found = Some(LinkFailure::Fatal(core.clone()));
            } else if let Some(chain) = e.downcast_ref::<ChainFailure>() {
                found = Some(LinkFailure::Fatal(chain.0.clone()));
            } else if let Some(t) = e.downcast_ref::<TransportFailure>() {
                found = Some(LinkFailure::Unreachable(t.to_string()));
            } else if let Some(entra) = e.downcast_ref::<crate::entra_error::EntraError>() {
                found = Some(LinkFailure::Other(entra.to_string()));
            } else if let Some(az) = e.downcast_ref::<azure_core::Error>() {
                if let azure_core::error::ErrorKind::HttpResponse { status: s, .. } = az.kind() {
                    status.get_or_insert(u16::from(*s));
                }
            }
        });
        if let Some(f) = found {
            return match f {
                LinkFailure::Fatal(e) if e.kind() != ErrorKind::Throttled => {
                    LinkFailure::Other(e.message().to_owned())
                }
                other => other,
            };
        }
        let text = sanitize_sdk_message(&err.to_string());
        if text.contains("expires_on field not found") {
            // azure_identity's AzureCliCredential reads `expires_on`, which az has from 2.54.0.
            return LinkFailure::Other(
                "the Azure CLI is older than 2.54.0 (`az account get-access-token` has no \
                 expires_on): upgrade it (az upgrade)"
                    .to_owned(),
            );
        }
        match status {
            Some(s) => LinkFailure::Other(format!("HTTP {s}: {text}")),
            None => LinkFailure::Other(text),
        }
    }
}

/// An SDK message reduced to one short line: no troubleshooting link, nothing token-shaped.
pub(crate) fn sanitize_sdk_message(text: &str) -> String {
    let first = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("To troubleshoot"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cleaned = first;
    for prefix in [
        "ClientSecretCredential authentication failed.",
        "WorkloadIdentityCredential authentication failed.",
        "ManagedIdentityCredential authentication failed.",
        "AzureCliCredential authentication failed.",
    ] {
        if let Some(rest) = cleaned.strip_prefix(prefix) {
            cleaned = rest.trim().to_owned();
        }
    }
    let words: Vec<String> = cleaned
        .split(' ')
        .map(|w| {
            if w.starts_with("eyJ") || (w.len() > 40 && w.matches('.').count() >= 2) {
                "[redacted]".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    let mut line = words.join(" ");
    if line.chars().count() > 240 {
        line = line.chars().take(237).collect::<String>() + "...";
    }
    if line.is_empty() {
        "no details".to_owned()
    } else {
        line
    }
}

fn build_link(plan: LinkPlan, env: &CredentialEnv, options: &ClientOptions) -> Ready {
    let sdk = |r: azure_core::Result<Arc<dyn TokenCredential>>| match r {
        Ok(c) => Ready::Credential(c),
        Err(e) => Ready::Broken(sanitize_sdk_message(&e.to_string())),
    };
    match plan {
        LinkPlan::Skip(why) => Ready::Skip(why),
        LinkPlan::Unsupported(why) => Ready::Unsupported(why),
        LinkPlan::ClientSecret {
            tenant_id,
            client_id,
        } => {
            let secret = env
                .get("AZURE_CLIENT_SECRET")
                .unwrap_or_default()
                .to_owned();
            sdk(ClientSecretCredential::new(
                &tenant_id,
                client_id,
                Secret::new(secret),
                Some(ClientSecretCredentialOptions {
                    client_options: options.clone(),
                }),
            )
            .map(|c| c as Arc<dyn TokenCredential>))
        }
        LinkPlan::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => {
            if let Err(e) = std::fs::metadata(&token_file) {
                return Ready::Broken(format!(
                    "cannot read AZURE_FEDERATED_TOKEN_FILE {}: {e}",
                    token_file.display()
                ));
            }
            sdk(
                WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions {
                        client_options: options.clone(),
                    },
                    client_id: Some(client_id),
                    tenant_id: Some(tenant_id),
                    token_file_path: Some(token_file),
                }))
                .map(|c| c as Arc<dyn TokenCredential>),
            )
        }
        LinkPlan::ManagedIdentityEndpoint {
            endpoint,
            client_id,
        } => match url::Url::parse(&endpoint) {
            Ok(url) => Ready::Credential(Arc::new(AppServiceManagedIdentity {
                endpoint: url,
                header: Secret::new(env.get("IDENTITY_HEADER").unwrap_or_default().to_owned()),
                client_id,
                pipeline: Pipeline::new(
                    Some(env!("CARGO_PKG_NAME")),
                    Some(env!("CARGO_PKG_VERSION")),
                    options.clone(),
                    Vec::new(),
                    Vec::new(),
                    None,
                ),
                cache: Mutex::new(BTreeMap::new()),
            })),
            Err(e) => Ready::Broken(format!("IDENTITY_ENDPOINT is not a URL ({e})")),
        },
        LinkPlan::ManagedIdentityImds { client_id } => sdk(ManagedIdentityCredential::new(Some(
            ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.map(UserAssignedId::ClientId),
                client_options: options.clone(),
            },
        ))
        .map(|c| c as Arc<dyn TokenCredential>)),
        LinkPlan::AzureCli { az } => {
            let dir = az.parent().map(Path::to_path_buf).unwrap_or_default();
            let path = env.get("PATH").unwrap_or_default().to_owned();
            sdk(AzureCliCredential::new(Some(AzureCliCredentialOptions {
                executor: Some(Arc::new(PathExecutor { path, az_dir: dir })),
                ..Default::default()
            }))
            .map(|c| c as Arc<dyn TokenCredential>))
        }
    }
}

/// Runs the SDK's `/bin/sh -c "cd /bin && az ..."` with the chain's PATH (not the process's)
/// and without our secrets in the child's environment; the child dies with the operation.
#[derive(Debug)]
struct PathExecutor {
    path: String,
    az_dir: PathBuf,
}

#[async_trait]
impl Executor for PathExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> std::io::Result<std::process::Output> {
        let mut path = self.path.clone();
        if path.is_empty() {
            path = self.az_dir.display().to_string();
        }
        tokio::process::Command::new(program)
            .args(args)
            .env("PATH", path)
            .env_remove("AZURE_CLIENT_SECRET")
            .env_remove("IDENTITY_HEADER")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
    }
}

/// Managed identity through `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (App Service 2019-08-01
/// protocol, also used by container hosts). The SDK has the same code, but it reads both
/// variables from the process environment instead of the chain's snapshot.
struct AppServiceManagedIdentity {
    endpoint: url::Url,
    header: Secret,
    client_id: Option<String>,
    pipeline: Pipeline,
    cache: Mutex<BTreeMap<String, AccessToken>>,
}

impl fmt::Debug for AppServiceManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppServiceManagedIdentity")
            .field("endpoint", &transport::display_url(&self.endpoint))
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct MsiTokenResponse {
    access_token: String,
    expires_on: serde_json::Value,
}

#[async_trait]
impl TokenCredential for AppServiceManagedIdentity {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let [scope] = scopes else {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "managed identity needs exactly one scope",
            ));
        };
        if let Some(t) = self.cache.lock().ok().and_then(|c| c.get(*scope).cloned()) {
            if t.expires_on > OffsetDateTime::now_utc() + azure_core::time::Duration::seconds(300) {
                return Ok(t);
            }
        }
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("api-version", "2019-08-01")
            .append_pair("resource", resource);
        if let Some(id) = &self.client_id {
            url.query_pairs_mut().append_pair("client_id", id);
        }
        let mut req = Request::new(url, Method::Get);
        req.insert_header("x-identity-header", self.header.secret().to_owned());
        req.insert_header("metadata", "true");
        let ctx = options
            .map(|o| o.method_options.context)
            .unwrap_or_default();
        let rsp = self
            .pipeline
            .send(
                &ctx,
                &mut req,
                Some(PipelineSendOptions {
                    skip_checks: true,
                    ..Default::default()
                }),
            )
            .await?;
        let status = rsp.status();
        if !status.is_success() {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!(
                    "the managed identity endpoint {} answered HTTP {}",
                    transport::display_url(&self.endpoint),
                    u16::from(status)
                ),
            ));
        }
        let body: MsiTokenResponse = serde_json::from_slice(rsp.body()).map_err(|_| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::DataConversion,
                "the managed identity endpoint answered something that is not a token response",
            )
        })?;
        let expires = match &body.expires_on {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.parse::<i64>().ok(),
            _ => None,
        }
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or_else(|| OffsetDateTime::now_utc() + azure_core::time::Duration::minutes(5));
        let token = AccessToken::new(body.access_token, expires);
        if let Ok(mut c) = self.cache.lock() {
            c.insert((*scope).to_owned(), token.clone());
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> CredentialEnv {
        CredentialEnv::from_pairs(pairs.iter().copied())
    }

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
            })
        );
        // v2 tokens carry azp instead of appid.
        let t = jwt(r#"{"tid":"t","azp":"c-2"}"#);
        assert_eq!(decode_claims(&t).unwrap().client_id.as_deref(), Some("c-2"));
        assert_eq!(decode_claims("not-a-jwt"), None);
        assert_eq!(decode_claims("a.!!!.c"), None);
        assert_eq!(
            decode_claims(&format!("x.{}.y", "e30")),
            Some(Claims::default())
        );
    }

    fn kinds(choice: CredentialChoice, e: &CredentialEnv) -> Vec<(CredentialChoice, String)> {
        plan(choice, e)
            .into_iter()
            .map(|p| {
                let what = match p.plan {
                    LinkPlan::ClientSecret { .. } => "secret".to_owned(),
                    LinkPlan::WorkloadIdentity { .. } => "workload".to_owned(),
                    LinkPlan::ManagedIdentityEndpoint { .. } => "mi-endpoint".to_owned(),
                    LinkPlan::ManagedIdentityImds { .. } => "imds".to_owned(),
                    LinkPlan::AzureCli { .. } => "az".to_owned(),
                    LinkPlan::Skip(w) => format!("skip: {w}"),
                    LinkPlan::Unsupported(w) => format!("unsupported: {w}"),
                };
                (p.link, what)
            })
            .collect()
    }

    #[test]
    fn empty_environment_skips_every_link_in_order_and_never_probes_imds() {
        let plan = kinds(CredentialChoice::Auto, &CredentialEnv::default());
        let links: Vec<_> = plan.iter().map(|p| p.0).collect();
        assert_eq!(
            links,
            [
                CredentialChoice::Environment,
                CredentialChoice::WorkloadIdentity,
                CredentialChoice::ManagedIdentity,
                CredentialChoice::AzureCli
            ]
        );
        assert!(plan.iter().all(|p| p.1.starts_with("skip:")), "{plan:?}");
        assert!(plan[0]
            .1
            .contains("AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET are not set"));
        assert!(plan[2].1.contains("IMDS is only tried"));
        assert_eq!(plan[3].1, "skip: az is not on PATH");
    }

    #[test]
    fn environment_link_needs_tenant_client_and_secret() {
        let e = env(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
        ]);
        assert_eq!(kinds(CredentialChoice::Auto, &e)[0].1, "secret");
        let e = env(&[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")]);
        assert_eq!(
            kinds(CredentialChoice::Auto, &e)[0].1,
            "skip: AZURE_CLIENT_SECRET is not set"
        );
        let e = env(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", ""),
        ]);
        assert_eq!(
            kinds(CredentialChoice::Auto, &e)[0].1,
            "skip: AZURE_CLIENT_SECRET is not set"
        );
    }

    #[test]
    fn certificate_is_reported_unsupported() {
        let e = env(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", "/x.pem"),
        ]);
        let p = kinds(CredentialChoice::Auto, &e);
        assert!(
            p[0].1
                .starts_with("unsupported: AZURE_CLIENT_CERTIFICATE_PATH"),
            "{p:?}"
        );
        assert!(p[0].1.contains("OpenSSL"));
    }

    #[test]
    fn workload_identity_needs_token_file_tenant_and_client() {
        let e = env(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
        ]);
        let p = kinds(CredentialChoice::Auto, &e);
        assert!(p[0].1.contains("AZURE_CLIENT_SECRET is not set"));
        assert_eq!(p[1].1, "workload");
        let e = env(&[("AZURE_FEDERATED_TOKEN_FILE", "/f")]);
        assert_eq!(
            kinds(CredentialChoice::Auto, &e)[1].1,
            "skip: AZURE_TENANT_ID, AZURE_CLIENT_ID are not set"
        );
    }

    #[test]
    fn managed_identity_uses_the_endpoint_and_imds_only_when_pinned() {
        let e = env(&[
            ("IDENTITY_ENDPOINT", "https://h/msi/token"),
            ("IDENTITY_HEADER", "x"),
        ]);
        assert_eq!(kinds(CredentialChoice::Auto, &e)[2].1, "mi-endpoint");
        let e = env(&[("IDENTITY_ENDPOINT", "https://h/msi/token")]);
        assert!(kinds(CredentialChoice::Auto, &e)[2]
            .1
            .contains("IDENTITY_HEADER is not set"));
        assert_eq!(
            kinds(CredentialChoice::ManagedIdentity, &CredentialEnv::default()),
            [(CredentialChoice::ManagedIdentity, "imds".to_owned())]
        );
    }

    #[test]
    fn azure_cli_is_tried_only_when_az_is_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let az = dir.path().join("az");
        std::fs::write(&az, "#!/bin/sh\n").unwrap();
        let path = format!("/nonexistent:{}", dir.path().display());
        // Not executable yet.
        let e = env(&[("PATH", path.as_str())]);
        assert_eq!(
            kinds(CredentialChoice::Auto, &e)[3].1,
            "skip: az is not on PATH"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
            let p = plan(CredentialChoice::Auto, &e);
            assert_eq!(p[3].plan, LinkPlan::AzureCli { az: az.clone() });
        }
    }

    #[test]
    fn a_pinned_choice_plans_exactly_one_link() {
        let e = env(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
        ]);
        for choice in [
            CredentialChoice::Environment,
            CredentialChoice::WorkloadIdentity,
            CredentialChoice::ManagedIdentity,
            CredentialChoice::AzureCli,
        ] {
            let p = plan(choice, &e);
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].link, choice);
        }
    }

    #[test]
    fn authority_host_must_be_https() {
        assert_eq!(
            authority_host(&CredentialEnv::default()).unwrap(),
            PUBLIC_AUTHORITY
        );
        let e = env(&[("AZURE_AUTHORITY_HOST", "https://127.0.0.1:8443/")]);
        assert_eq!(authority_host(&e).unwrap(), "https://127.0.0.1:8443");
        let e = env(&[("AZURE_AUTHORITY_HOST", "http://login.example")]);
        assert_eq!(authority_host(&e).unwrap_err().kind(), ErrorKind::BadConfig);
    }

    #[test]
    fn env_debug_hides_secrets() {
        let e = env(&[
            ("AZURE_CLIENT_SECRET", "hunter2-distinctive"),
            ("IDENTITY_HEADER", "hdr-distinctive"),
        ]);
        let d = format!("{e:?}");
        assert!(
            !d.contains("hunter2-distinctive") && !d.contains("hdr-distinctive"),
            "{d}"
        );
    }

    #[test]
    fn sdk_messages_are_cut_to_one_clean_line() {
        let m = sanitize_sdk_message(
            "ClientSecretCredential authentication failed. AADSTS7000215: Invalid client secret.\nTo troubleshoot, visit https://aka.ms/x",
        );
        assert_eq!(m, "AADSTS7000215: Invalid client secret.");
        let m = sanitize_sdk_message("got eyJhbGciOi.eyJzdWIiOi.c2ln back");
        assert_eq!(m, "got [redacted] back");
    }

    #[tokio::test]
    async fn chain_with_nothing_configured_lists_every_link() {
        let chain = CredentialChain::new(
            CredentialChoice::Auto,
            &CredentialEnv::default(),
            &ClientOptions::default(),
        )
        .unwrap();
        let err = chain
            .try_links(&["https://vault.azure.net/.default"], None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        let lines: Vec<&str> = err.message().lines().collect();
        assert_eq!(lines[0], "no Azure credential could get a token; tried:");
        assert!(lines[1].starts_with("  environment: skipped: "));
        assert!(lines[2].starts_with("  workload-identity: skipped: "));
        assert!(lines[3].starts_with("  managed-identity: skipped: "));
        assert!(lines[4].starts_with("  azure-cli: skipped: az is not on PATH"));
        assert!(err.hint().unwrap().contains("az login"));
    }

    #[tokio::test]
    async fn unreadable_token_file_is_a_failed_attempt() {
        let e = env(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/token"),
        ]);
        let chain = CredentialChain::new(
            CredentialChoice::WorkloadIdentity,
            &e,
            &ClientOptions::default(),
        )
        .unwrap();
        let err = chain.try_links(&["s/.default"], None).await.unwrap_err();
        assert!(
            err.message().contains("workload-identity: failed: cannot read AZURE_FEDERATED_TOKEN_FILE /nonexistent/token"),
            "{}",
            err.message()
        );
        assert!(err.hint().unwrap().contains("AZURE_FEDERATED_TOKEN_FILE"));
    }
}
