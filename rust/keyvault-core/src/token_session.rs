//! Entra access tokens for the API behind an identity-aware proxy (an `[auth]` group with
//! `entra-scope`): the job's own identity is the credential, no vault involved.
//!
//! It reuses what the vault session has: the credential chain (`keyvault.credential`, every
//! link), the transport (CA bundle, deadline, User-Agent) and the token cache, keyed per
//! identity *and scope* ([`crate::token_cache::identity_key`]), so that a warm command sends no
//! request to Entra and a cold one sends one. Like [`crate::blocking::Session`] it owns a
//! current-thread runtime per process (chg forks).

use crate::config::{CredentialChoice, VaultConfig};
use crate::credential::{decode_claims, ChainFailure, Claims, CredentialChain, CredentialEnv};
use crate::credential::{sanitize_sdk_message, Identity};
use crate::error::{Error, ErrorKind, Result};
use crate::fork_local::{ForkLocal, ForkLocalGuard};
use crate::secret::SecretValue;
use crate::token_cache::{TokenCache, TokenSource};
use crate::transport::{self, secs, TransportFailure, OPERATION};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// What a token session needs: the `[keyvault]` options that decide identity and transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenConfig {
    /// `keyvault.credential`.
    pub credential: CredentialChoice,
    /// `keyvault.cacerts`: extra roots for the token endpoints.
    pub extra_roots_pem: Option<PathBuf>,
    /// `keyvault.timeout`: the deadline of one token request (with its retries).
    pub timeout: Duration,
    /// Appended to the User-Agent of token requests.
    pub user_agent_suffix: Option<String>,
    /// `keyvault.token-cache`: share tokens between this user's processes (kernel keyring).
    pub token_cache: bool,
    /// `keyvault.id-token-env`.
    pub id_token_env: Option<String>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            credential: CredentialChoice::Auto,
            extra_roots_pem: None,
            timeout: crate::config::DEFAULT_TIMEOUT,
            user_agent_suffix: None,
            token_cache: true,
            id_token_env: None,
        }
    }
}

impl TokenConfig {
    /// The transport and chain settings in the shape they take for a vault. The URL is a
    /// placeholder that nothing contacts: only the fields above are read from it.
    fn as_vault_config(&self) -> Result<VaultConfig> {
        let mut c = VaultConfig::new("https://entra-token-session.invalid/")?;
        c.credential = self.credential;
        c.extra_roots_pem = self.extra_roots_pem.clone();
        c.timeout = self.timeout;
        c.user_agent_suffix = self.user_agent_suffix.clone();
        c.token_cache = self.token_cache;
        c.id_token_env = self.id_token_env.clone();
        c.validate()?;
        Ok(c)
    }
}

/// An access token for one scope, with what `hg vault` and error messages show of it.
/// `Debug` never prints the token.
#[derive(Clone, Debug)]
pub struct ScopedToken {
    /// The token itself (redacted in `Debug`, wiped on drop).
    pub token: SecretValue,
    /// When Entra says it expires.
    pub expires_on: OffsetDateTime,
    /// Until when it is used; a later request gets a new one (expiry minus a margin).
    pub fresh_until: OffsetDateTime,
    /// Whether it came from the token cache (no request to Entra).
    pub from_cache: bool,
    /// Its claims: tenant, client and object ids, audience and issuer.
    pub claims: Claims,
    /// The link that got it and the identity as the chain reports it.
    pub identity: Option<Identity>,
}

struct Live {
    runtime: tokio::runtime::Runtime,
    config: VaultConfig,
    env: CredentialEnv,
    options: azure_core::http::ClientOptions,
    /// The same over a client that ignores proxy variables (host-local identity endpoints).
    direct_options: azure_core::http::ClientOptions,
    chain: Mutex<Arc<CredentialChain>>,
    caches: Mutex<HashMap<String, Arc<TokenCache>>>,
}

impl Live {
    fn chain(&self) -> Arc<CredentialChain> {
        self.chain.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn cache_for(&self, scope: &str) -> Arc<TokenCache> {
        let chain = self.chain();
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        caches
            .entry(scope.to_owned())
            .or_insert_with(|| {
                Arc::new(TokenCache::for_scope(&self.config, &self.env, chain, scope))
            })
            .clone()
    }

    /// A new chain, so that the next token comes from Entra: the SDK's credentials keep
    /// their own cache of tokens, which a refused token must not come back from.
    fn renew_chain(&self) -> Result<()> {
        let chain = {
            let _guard = self.runtime.enter();
            Arc::new(CredentialChain::with_direct(
                self.config.credential,
                &self.env,
                &self.options,
                &self.direct_options,
            )?)
        };
        *self.chain.lock().unwrap_or_else(|p| p.into_inner()) = chain;
        self.caches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(())
    }
}

/// A synchronous source of Entra tokens for `[auth]` groups' scopes.
pub struct TokenSession {
    config: TokenConfig,
    env: Option<CredentialEnv>,
    live: ForkLocal<Live>,
}

impl std::fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSession")
            .field("credential", &self.config.credential)
            .finish_non_exhaustive()
    }
}

impl TokenSession {
    /// A session with credentials from the process environment (read again after a fork).
    pub fn new(config: &TokenConfig) -> Result<Self> {
        Self::build(config, None)
    }

    /// A session with credentials from `env` only.
    pub fn with_env(config: &TokenConfig, env: CredentialEnv) -> Result<Self> {
        Self::build(config, Some(env))
    }

    fn build(config: &TokenConfig, env: Option<CredentialEnv>) -> Result<Self> {
        let session = Self {
            config: config.clone(),
            env,
            live: ForkLocal::new(),
        };
        drop(session.live()?);
        Ok(session)
    }

    fn make_live(&self) -> Result<Live> {
        let config = self.config.as_vault_config()?;
        let runtime = crate::blocking::io_runtime()?;
        let mut env = match &self.env {
            Some(env) => env.clone(),
            None => CredentialEnv::from_process_with_id_token(config.id_token_env.as_deref()),
        };
        env.set_id_token_variable(config.id_token_env.as_deref());
        let (chain, options, direct_options) = {
            let _guard = runtime.enter();
            let (options, direct) = transport::store_options(&config)?;
            let chain = Arc::new(CredentialChain::with_direct(
                config.credential,
                &env,
                &options,
                &direct,
            )?);
            (chain, options, direct)
        };
        Ok(Live {
            runtime,
            config,
            env,
            options,
            direct_options,
            chain: Mutex::new(chain),
            caches: Mutex::new(HashMap::new()),
        })
    }

    fn live(&self) -> Result<ForkLocalGuard<'_, Live>> {
        self.live.get_or_try_init(|| self.make_live())
    }

    /// A token for `scope` (`<App ID URI or client id>/.default`): from the cache while it is
    /// fresh, else from the chain (one request to Entra), then cached.
    pub fn token(&self, scope: &str) -> Result<ScopedToken> {
        let live = self.live()?;
        let cache = live.cache_for(scope);
        let timeout = live.config.timeout;
        let op = transport::Operation::new(timeout);
        let fut = OPERATION.scope(op.clone(), cache.token_for(scope, None));
        // The deadline's timer must be made inside the runtime.
        let outcome = live
            .runtime
            .block_on(async { tokio::time::timeout(timeout, fut).await });
        let entry = match outcome {
            Ok(Ok(entry)) => entry,
            Ok(Err(err)) => return Err(map_chain_error(&err)),
            Err(_) => {
                let url = op
                    .in_flight()
                    .unwrap_or_else(|| "the token endpoint".to_owned());
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no answer from {url} within {} (keyvault.timeout)",
                        secs(timeout)
                    ),
                )
                .with_hint(
                    "raise keyvault.timeout, or check the network between here and Entra ID",
                ));
            }
        };
        let text = entry.token.token.secret();
        Ok(ScopedToken {
            claims: decode_claims(text).unwrap_or_default(),
            token: SecretValue::from(text),
            expires_on: entry.token.expires_on,
            fresh_until: entry.fresh_until,
            from_cache: matches!(cache.last_source(), Some(TokenSource::Cache(_))),
            identity: live.chain().identity(),
        })
    }

    /// The server refused `token` (401): drop it from the cache of `scope` (here and in the
    /// kernel keyring), so that the next [`Self::token`] gets a new one from Entra.
    pub fn forget(&self, scope: &str, token: &SecretValue) -> Result<()> {
        let live = self.live()?;
        if let Ok(text) = std::str::from_utf8(token.expose()) {
            live.cache_for(scope).invalidate_token(text);
        }
        live.renew_chain()
    }
}

/// The chain's own error (which lists every link) when it is inside the SDK's error.
fn map_chain_error(err: &azure_core::Error) -> Error {
    let mut found: Option<Error> = None;
    transport::walk_errors(err, &mut |e| {
        if found.is_some() {
            return;
        }
        if let Some(c) = e.downcast_ref::<ChainFailure>() {
            found = Some(c.0.clone());
        } else if let Some(c) = e.downcast_ref::<Error>() {
            found = Some(c.clone());
        } else if let Some(t) = e.downcast_ref::<TransportFailure>() {
            found = Some(t.clone().into_error());
        }
    });
    found.unwrap_or_else(|| {
        Error::new(
            ErrorKind::Unauthenticated,
            format!(
                "the token request failed: {}",
                sanitize_sdk_message(&err.to_string())
            ),
        )
        .with_hint("run `hg vault` to see which identity the chain found")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_link_the_chain_error_comes_back_without_a_request() {
        let config = TokenConfig {
            credential: CredentialChoice::Environment,
            ..TokenConfig::default()
        };
        let session = TokenSession::with_env(&config, CredentialEnv::default()).unwrap();
        let err = session.token("api://hg-proxy/.default").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(
            err.message()
                .contains("environment credential could not get a token"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn a_session_reads_the_roots_once_and_builds_the_host_local_client_only_when_asked() {
        let env = CredentialEnv::from_pairs([
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
            ("IDENTITY_HEADER", "not-a-real-header"),
        ]);
        let cost = crate::azure::tests::setup_cost(|| {
            TokenSession::with_env(&TokenConfig::default(), env).unwrap();
        });
        assert_eq!(cost, (1, 1), "(root loads, clients built)");
    }

    #[test]
    fn scoped_token_debug_never_prints_the_token() {
        let t = ScopedToken {
            token: SecretValue::from("eyJ-secret-token"),
            expires_on: OffsetDateTime::UNIX_EPOCH,
            fresh_until: OffsetDateTime::UNIX_EPOCH,
            from_cache: true,
            claims: Claims::default(),
            identity: None,
        };
        assert!(!format!("{t:?}").contains("eyJ-secret-token"));
    }
}
