//! The chain: a `TokenCredential` that tries the planned links in order and sticks to the
//! first that gets a token. When none does, its error lists every link with the one reason it
//! did not apply or how it failed.

use super::claims::{decode_claims, Identity};
use super::env::{authority_host, CredentialEnv};
use super::link::{Link, LinkPlan, PlannedLink, Ready};
use super::links::LINKS;
use super::sdk_message::sanitize_sdk_message;
use crate::config::CredentialChoice;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{self, TransportFailure};
use async_trait::async_trait;
use azure_core::{
    cloud::{CloudConfiguration, CustomConfiguration},
    credentials::{AccessToken, TokenCredential, TokenRequestOptions},
    http::ClientOptions,
};
use std::{
    fmt,
    sync::{Arc, Mutex},
};

/// The links for `choice` (all of them for `auto`, else those of its group), in chain order,
/// with what each will do given `env`. Pure: reads nothing but the snapshot.
pub fn plan(choice: CredentialChoice, env: &CredentialEnv) -> Vec<PlannedLink> {
    planned_links(choice, env)
        .into_iter()
        .map(|(link, plan)| PlannedLink {
            link: link.group(),
            id: link.id(),
            plan,
        })
        .collect()
}

fn planned_links(
    choice: CredentialChoice,
    env: &CredentialEnv,
) -> Vec<(&'static dyn Link, LinkPlan)> {
    let pinned = choice != CredentialChoice::Auto;
    LINKS
        .iter()
        .copied()
        .filter(|l| !pinned || l.group() == choice)
        .map(|l| (l, l.plan(env, pinned)))
        .collect()
}

/// The ids of every link, in chain order (a cached entry's header names its link by place).
pub(crate) fn link_ids() -> impl Iterator<Item = &'static str> {
    LINKS.iter().map(|l| l.id())
}

/// The sealing material of each link that applies, by link id.
pub(crate) fn seal_materials(
    choice: CredentialChoice,
    env: &CredentialEnv,
) -> Vec<(&'static str, crate::cache_seal::Material)> {
    planned_links(choice, env)
        .into_iter()
        .filter(|(_, plan)| matches!(plan, LinkPlan::Use(_)))
        .map(|(link, _)| (link.id(), link.seal_material(env)))
        .collect()
}

/// Feeds each planned link's part of the token-cache key to `line`.
pub(crate) fn cache_key_lines(
    choice: CredentialChoice,
    env: &CredentialEnv,
    line: &mut dyn FnMut(&str, &str),
) {
    for (link, plan) in planned_links(choice, env) {
        line("link", link.id());
        match plan {
            LinkPlan::Use(_) => link.cache_key(env, line),
            LinkPlan::Skip(_) => line("plan", "skip"),
            LinkPlan::Unsupported(_) => line("plan", "unsupported"),
            LinkPlan::Refused(_) => line("plan", "refused"),
        }
    }
}

/// How one link ended, for the "all links failed" message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Which link (its id).
    pub link: &'static str,
    /// `skipped: ...`, `failed: ...`, `refused: ...` or `unsupported: ...`.
    pub outcome: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailureClass {
    Skipped,
    Unreachable,
    Other,
}

struct Entry {
    link: &'static dyn Link,
    plan: LinkPlan,
    ready: Option<Ready>,
}

#[derive(Default)]
struct ChainState {
    selected: Option<usize>,
    identity: Option<Identity>,
}

/// The chain of credential links for one `keyvault.credential` choice.
pub struct CredentialChain {
    choice: CredentialChoice,
    entries: Vec<Entry>,
    state: Mutex<ChainState>,
}

impl fmt::Debug for CredentialChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialChain")
            .field("choice", &self.choice)
            .field(
                "links",
                &self.entries.iter().map(|e| e.link.id()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl CredentialChain {
    /// [`Self::with_direct`] with one transport for every link (tests without proxies).
    #[cfg(test)]
    pub(crate) fn new(
        choice: CredentialChoice,
        env: &CredentialEnv,
        client_options: &ClientOptions,
    ) -> Result<Self> {
        Self::with_direct(choice, env, client_options, client_options)
    }

    /// Builds the chain for `choice` from `env`; every credential gets `client_options`
    /// (the store's transport, retry and User-Agent policies), except the links of a
    /// host-local endpoint ([`Link::host_local`]: IMDS, App Service, Arc, ...) which get
    /// `direct_options`, the same over a client that ignores proxy variables. Only links that
    /// apply are built.
    pub(crate) fn with_direct(
        choice: CredentialChoice,
        env: &CredentialEnv,
        client_options: &ClientOptions,
        direct_options: &ClientOptions,
    ) -> Result<Self> {
        let planned = planned_links(choice, env);
        let needs_authority = planned
            .iter()
            .any(|(l, p)| l.uses_entra() && matches!(p, LinkPlan::Use(_)));
        let mut options = client_options.clone();
        let mut direct = direct_options.clone();
        if needs_authority {
            // Always set the cloud: otherwise the SDK reads AZURE_AUTHORITY_HOST from the process
            // environment, not from `env`.
            let mut custom = CustomConfiguration::default();
            custom.authority_host = authority_host(env)?;
            let cloud = Some(Arc::new(CloudConfiguration::Custom(custom)));
            options.cloud = cloud.clone();
            direct.cloud = cloud;
        }
        let entries = planned
            .into_iter()
            .map(|(link, plan)| Entry {
                ready: matches!(plan, LinkPlan::Use(_))
                    .then(|| link.build(env, if link.host_local() { &direct } else { &options })),
                link,
                plan,
            })
            .collect();
        Ok(Self {
            choice,
            entries,
            state: Mutex::new(ChainState::default()),
        })
    }

    /// True when at least one link applies, so that asking for a token may send a request.
    /// When none does, the chain's error is known without the network.
    pub(crate) fn any_applies(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e.plan, LinkPlan::Use(_)))
    }

    /// The identity of the last token obtained, if any.
    pub fn identity(&self) -> Option<Identity> {
        self.state.lock().ok().and_then(|s| s.identity.clone())
    }

    /// The group of the link that succeeded, if any.
    pub fn selected_link(&self) -> Option<CredentialChoice> {
        let state = self.state.lock().ok()?;
        state.selected.map(|i| self.entries[i].link.group())
    }

    /// The id of the link that succeeded, if any.
    pub fn selected_link_id(&self) -> Option<&'static str> {
        let state = self.state.lock().ok()?;
        state.selected.map(|i| self.entries[i].link.id())
    }

    /// Takes a token that the link `id` got earlier (the token cache) as if this chain had got
    /// it: the identity shown by `hg vault` and named in errors is the token's.
    pub(crate) fn adopt(&self, id: &str, token: &AccessToken) {
        if let Some(index) = self.entries.iter().position(|e| e.link.id() == id) {
            self.remember(index, token);
        }
    }

    fn remember(&self, index: usize, token: &AccessToken) {
        let claims = decode_claims(token.token.secret()).unwrap_or_default();
        let entry = &self.entries[index];
        let via = match &entry.plan {
            LinkPlan::Use(via) => via.clone(),
            _ => entry.link.id().to_owned(),
        };
        if let Ok(mut state) = self.state.lock() {
            state.selected = Some(index);
            state.identity = Some(Identity {
                link: entry.link.group(),
                link_id: entry.link.id(),
                via,
                tenant_id: claims.tenant_id,
                client_id: claims.client_id,
                object_id: claims.object_id,
            });
        }
    }

    pub(crate) async fn try_links(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> std::result::Result<AccessToken, Error> {
        let selected = self.state.lock().ok().and_then(|s| s.selected);
        let mut attempts = Vec::new();
        let mut classes = Vec::new();
        let mut first_tried: Option<&'static dyn Link> = None;
        for (index, entry) in self.entries.iter().enumerate() {
            if selected.is_some_and(|s| s != index) {
                continue;
            }
            let (outcome, class) = match (&entry.plan, &entry.ready) {
                (LinkPlan::Skip(why), _) => (format!("skipped: {why}"), FailureClass::Skipped),
                (LinkPlan::Unsupported(why), _) => {
                    (format!("unsupported: {why}"), FailureClass::Other)
                }
                (LinkPlan::Refused(why), _) => (format!("refused: {why}"), FailureClass::Other),
                (LinkPlan::Use(_), Some(Ready::Broken(why))) | (LinkPlan::Use(why), None) => {
                    (format!("failed: {why}"), FailureClass::Other)
                }
                (LinkPlan::Use(_), Some(Ready::Credential(cred))) => {
                    match cred.get_token(scopes, options.clone()).await {
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
                    }
                }
            };
            if class != FailureClass::Skipped {
                first_tried.get_or_insert(entry.link);
            }
            attempts.push(Attempt {
                link: entry.link.id(),
                outcome,
            });
            classes.push(class);
        }
        Err(self.all_failed(&attempts, &classes, first_tried))
    }

    fn all_failed(
        &self,
        attempts: &[Attempt],
        classes: &[FailureClass],
        first_tried: Option<&'static dyn Link>,
    ) -> Error {
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
        // The hint of the first link that applied says what to fix; with none, what to set.
        let hint = match first_tried {
            Some(link) => link.hint(),
            None => match self.choice {
                CredentialChoice::Auto => {
                    "in CI, let the job ask for its OIDC token (GitHub/Forgejo Actions: permissions: id-token: write) \
                     and set AZURE_CLIENT_ID and AZURE_TENANT_ID; on a laptop, run `az login`; see docs/identities.md"
                }
                CredentialChoice::CiOidc => {
                    "run in a CI job that can ask for its OIDC token, with AZURE_CLIENT_ID and AZURE_TENANT_ID set \
                     (GitLab/Heptapod: keyvault.id-token-env)"
                }
                CredentialChoice::ManagedIdentity => {
                    "run on an Azure resource with a managed identity, or choose another keyvault.credential"
                }
                _ => self.entries.first().map_or("", |e| e.link.hint()),
            },
        };
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
        .with_hint(hint)
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
