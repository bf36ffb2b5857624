//! The token cache: one access token per identity and vault, shared by the processes of one
//! user through kernel keyutils (memory only, see [`crate::kernel_keys`]), kept with the scope
//! the vault's challenge named, so that a warm `hg` process sends one request to the vault:
//! no challenge probe, no token request.
//!
//! - The key is a hash of everything that decides which token the chain would get: the vault's
//!   origin, the credential choice, the authority host, and per planned link its ids plus a
//!   digest of its credential material (client secret, identity header, federated token file
//!   path and content, the Azure CLI profile). Another identity or vault never sees this entry.
//! - The entry is sealed under that link's credential material ([`crate::cache_seal`]): other
//!   processes of the uid (other containers without a user namespace) can read the kernel key
//!   but not the token, unless they hold the same credential.
//! - An entry is fresh until its expiry minus a margin (5 minutes, or half the lifetime for
//!   short-lived tokens); the kernel key's timeout is that same instant.
//! - A 401 to a cached token drops the entry (if it still holds that token), so the next fetch
//!   gets a new one.
//! - Fetches are serialised per key: in the process by an async mutex, across processes by
//!   [`crate::cache_lock`]; whoever gets the lock first looks at the cache again.
//!
//! With the kernel store unavailable, the cache still works within the process.

use crate::cache_lock::{FileLock, LockDir};
use crate::cache_seal::{CacheSeal, Purpose};
use crate::config::{CredentialChoice, VaultConfig};
use crate::credential::{self, CredentialChain, CredentialEnv};
use crate::kernel_keys::KernelKeys;
use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::time::{Duration as TimeDelta, OffsetDateTime};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

/// Longest margin between the end of a token's use here and its expiry.
const MAX_MARGIN: TimeDelta = TimeDelta::minutes(5);

/// How long a process waits for another one's fetch before fetching itself.
const MAX_LOCK_WAIT: Duration = Duration::from_secs(5);

/// How long the scope a vault's challenge named is remembered (it is not secret; a vault
/// changes it only when it moves to another cloud, and a 401 then sends us back to the probe).
const CHALLENGE_TTL: Duration = Duration::from_secs(24 * 3600);

// Provider-neutral: `hg vault` reports them for any store that caches tokens.
pub use crate::store::{CacheStore, TokenSource};

/// A cached token with the scope it was issued for and the link that got it.
#[derive(Clone)]
pub(crate) struct CachedToken {
    pub(crate) scope: String,
    pub(crate) token: AccessToken,
    /// The id of the link that got it (`azure-vm`, `github-actions`, ...).
    pub(crate) link: String,
    pub(crate) fresh_until: OffsetDateTime,
}

impl CachedToken {
    fn is_fresh(&self, now: OffsetDateTime) -> bool {
        now < self.fresh_until
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    v: u8,
    scope: String,
    token: String,
    expires_on: i64,
    fresh_until: i64,
    link: String,
}

/// The shared token cache of one store; also the `TokenCredential` its vault client uses.
pub struct TokenCache {
    chain: Arc<CredentialChain>,
    key: String,
    seal: CacheSeal,
    kernel: Option<KernelKeys>,
    locks: Option<LockDir>,
    memory: Mutex<Option<CachedToken>>,
    fetching: futures::lock::Mutex<()>,
    last: Mutex<Option<TokenSource>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("key", &self.key)
            .field("store", &self.store())
            .finish_non_exhaustive()
    }
}

/// Held while fetching: the in-process mutex and, when available, the cross-process lock.
pub(crate) struct FetchGuard<'a> {
    _local: futures::lock::MutexGuard<'a, ()>,
    _file: Option<FileLock>,
}

impl TokenCache {
    pub(crate) fn new(
        config: &VaultConfig,
        env: &CredentialEnv,
        chain: Arc<CredentialChain>,
    ) -> Self {
        let kernel = KernelKeys::open();
        Self {
            chain,
            key: cache_key(config, env),
            seal: CacheSeal::new(config, env),
            locks: kernel.as_ref().and_then(|_| LockDir::open()),
            kernel,
            memory: Mutex::new(None),
            fetching: futures::lock::Mutex::new(()),
            last: Mutex::new(None),
        }
    }

    /// The cache of the tokens `chain` gets for `scope` (an `[auth]` group's API, not a vault):
    /// keyed by the identity and the scope, sealed as the vault's tokens are.
    pub(crate) fn for_scope(
        config: &VaultConfig,
        env: &CredentialEnv,
        chain: Arc<CredentialChain>,
        scope: &str,
    ) -> Self {
        let mut cache = Self::new(config, env, chain);
        cache.key = identity_key(("scope", scope), config.credential, env);
        if !config.token_cache {
            // keyvault.token-cache = false: this process only.
            cache.kernel = None;
            cache.locks = None;
        }
        cache
    }

    /// Where this cache keeps tokens.
    pub fn store(&self) -> CacheStore {
        if self.kernel.is_some() {
            CacheStore::KernelKeyring
        } else {
            CacheStore::Process
        }
    }

    /// Where the token of the last request came from, if a token was used.
    pub fn last_source(&self) -> Option<TokenSource> {
        self.last.lock().ok().and_then(|l| *l)
    }

    /// The hash naming this identity and vault (also namespaces the secret cache).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    fn description(&self) -> String {
        format!("hg-keyvault:token:{}", self.key)
    }

    fn challenge_description(&self) -> String {
        format!("hg-keyvault:challenge:{}", self.key)
    }

    fn note(&self, source: TokenSource) {
        if let Ok(mut l) = self.last.lock() {
            *l = Some(source);
        }
    }

    /// A fresh token (for `scope`, if given) from memory or the kernel keyring.
    pub(crate) fn fresh(&self, scope: Option<&str>) -> Option<CachedToken> {
        let now = OffsetDateTime::now_utc();
        let fits = |t: &CachedToken| t.is_fresh(now) && scope.is_none_or(|s| s == t.scope);
        let in_memory = self.memory.lock().ok().and_then(|m| m.clone());
        let found = match in_memory.filter(fits) {
            Some(t) => t,
            None => {
                let t = self.read_kernel().filter(fits)?;
                if let Ok(mut m) = self.memory.lock() {
                    *m = Some(t.clone());
                }
                t
            }
        };
        self.chain.adopt(&found.link, &found.token);
        self.note(TokenSource::Cache(found.fresh_until));
        Some(found)
    }

    /// The scope the vault's challenge named last time, if anything remembers it.
    pub(crate) fn known_scope(&self) -> Option<String> {
        let in_memory = self.memory.lock().ok().and_then(|m| m.clone());
        in_memory
            .or_else(|| self.read_kernel())
            .map(|t| t.scope)
            .or_else(|| {
                let raw = self.kernel.as_ref()?.read(&self.challenge_description())?;
                String::from_utf8(raw.to_vec()).ok()
            })
    }

    /// The chain's error when no link applies (decided from the environment, no request sent);
    /// `Ok` when some link might get a token.
    pub(crate) async fn fail_without_links(&self) -> azure_core::Result<()> {
        if self.chain.any_applies() {
            return Ok(());
        }
        // With no link to try, the chain answers from its plan alone; the scope is not used.
        self.chain
            .get_token(&["https://vault.azure.net/.default"], None)
            .await?;
        Ok(())
    }

    /// Waits for the right to fetch (bounded); look at [`Self::fresh`] again once it is held.
    pub(crate) async fn guard(&self) -> FetchGuard<'_> {
        let local = self.fetching.lock().await;
        let file = match &self.locks {
            Some(dir) => dir.lock(&self.key, lock_wait()).await,
            None => None,
        };
        FetchGuard {
            _local: local,
            _file: file,
        }
    }

    /// Gets a token for `scope` through the chain and caches it. Call with the guard held.
    pub(crate) async fn fetch(
        &self,
        scope: &str,
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<CachedToken> {
        let token = self.chain.get_token(&[scope], options).await?;
        let link = self
            .chain
            .selected_link_id()
            .unwrap_or(CredentialChoice::Auto.as_str())
            .to_owned();
        let now = OffsetDateTime::now_utc();
        let entry = CachedToken {
            scope: scope.to_owned(),
            fresh_until: fresh_until(now, token.expires_on),
            token,
            link,
        };
        if let Ok(mut m) = self.memory.lock() {
            *m = Some(entry.clone());
        }
        self.write_kernel(&entry, now);
        self.note(TokenSource::Fetched(entry.fresh_until));
        Ok(entry)
    }

    /// A fresh token for `scope`: cached, or fetched by this process or another one.
    pub(crate) async fn token_for(
        &self,
        scope: &str,
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<CachedToken> {
        if let Some(t) = self.fresh(Some(scope)) {
            return Ok(t);
        }
        let _guard = self.guard().await;
        if let Some(t) = self.fresh(Some(scope)) {
            return Ok(t);
        }
        self.fetch(scope, options).await
    }

    /// The vault refused `bad` (401): forget it, here and in the kernel keyring, unless another
    /// process has already replaced it.
    pub(crate) fn invalidate(&self, bad: &CachedToken) {
        self.invalidate_token(bad.token.token.secret());
    }

    /// [`Self::invalidate`] by the token's text (what a refused request carried).
    pub(crate) fn invalidate_token(&self, bad: &str) {
        if let Ok(mut m) = self.memory.lock() {
            if m.as_ref().is_some_and(|t| t.token.token.secret() == bad) {
                // Keep what the challenge said; only the token is bad.
                if let Some(t) = m.as_mut() {
                    t.fresh_until = OffsetDateTime::UNIX_EPOCH;
                }
            }
        }
        if let Some(kernel) = &self.kernel {
            if self
                .read_kernel()
                .is_some_and(|t| t.token.token.secret() == bad)
            {
                kernel.remove(&self.description());
            }
        }
    }

    fn read_kernel(&self) -> Option<CachedToken> {
        let description = self.description();
        let sealed = self.kernel.as_ref()?.read(&description)?;
        let (link, raw) = self.seal.open(Purpose::Token, &description, &sealed)?;
        let p: Payload = serde_json::from_slice(&raw).ok()?;
        let mut p = Zeroizing::new(p);
        if p.v != 1 || p.link != link {
            return None;
        }
        let expires = OffsetDateTime::from_unix_timestamp(p.expires_on).ok()?;
        Some(CachedToken {
            scope: std::mem::take(&mut p.scope),
            token: AccessToken::new(Secret::new(std::mem::take(&mut p.token)), expires),
            link: std::mem::take(&mut p.link),
            fresh_until: OffsetDateTime::from_unix_timestamp(p.fresh_until).ok()?,
        })
    }

    fn write_kernel(&self, entry: &CachedToken, now: OffsetDateTime) {
        let Some(kernel) = &self.kernel else {
            return;
        };
        kernel.write(
            &self.challenge_description(),
            entry.scope.as_bytes(),
            CHALLENGE_TTL,
        );
        let Ok(ttl) = Duration::try_from(entry.fresh_until - now) else {
            return;
        };
        let payload = Zeroizing::new(Payload {
            v: 1,
            scope: entry.scope.clone(),
            token: entry.token.token.secret().to_owned(),
            expires_on: entry.token.expires_on.unix_timestamp(),
            fresh_until: entry.fresh_until.unix_timestamp(),
            link: entry.link.clone(),
        });
        let Ok(bytes) = serde_json::to_vec(&*payload).map(Zeroizing::new) else {
            return;
        };
        let description = self.description();
        if let Some(sealed) = self
            .seal
            .seal(&entry.link, Purpose::Token, &description, &bytes)
        {
            kernel.write(&description, &sealed, ttl);
        }
    }
}

impl zeroize::Zeroize for Payload {
    fn zeroize(&mut self) {
        self.token.zeroize();
    }
}

#[async_trait]
impl TokenCredential for TokenCache {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        match scopes {
            [scope] => Ok(self.token_for(scope, options).await?.token),
            _ => self.chain.get_token(scopes, options).await,
        }
    }
}

fn lock_wait() -> Duration {
    crate::transport::OPERATION
        .try_with(|op| op.remaining() / 2)
        .unwrap_or(MAX_LOCK_WAIT)
        .min(MAX_LOCK_WAIT)
}

/// Expiry minus the margin: 5 minutes, or half the remaining life of a short-lived token.
pub(crate) fn fresh_until(now: OffsetDateTime, expires_on: OffsetDateTime) -> OffsetDateTime {
    let life = expires_on - now;
    if life <= TimeDelta::ZERO {
        return now;
    }
    let half: TimeDelta = life / 2;
    expires_on - half.min(MAX_MARGIN)
}

/// The cache key: a hash of what decides which token the chain would get for this vault.
pub(crate) fn cache_key(config: &VaultConfig, env: &CredentialEnv) -> String {
    let url = &config.vault_url;
    let origin = format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default().to_ascii_lowercase(),
        url.port_or_known_default().unwrap_or(443)
    );
    identity_key(("vault", &origin), config.credential, env)
}

/// A hash of what the token is for (`("vault", origin)` or `("scope", scope)`) and of what
/// decides which identity the chain would get it as.
pub(crate) fn identity_key(
    target: (&str, &str),
    choice: CredentialChoice,
    env: &CredentialEnv,
) -> String {
    let mut h = Sha256::new();
    let mut line = |k: &str, v: &str| {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\n");
    };
    line("hg-keyvault token cache", "2");
    line(target.0, target.1);
    line("choice", choice.as_str());
    line(
        "authority",
        &credential::authority_host(env).unwrap_or_default(),
    );
    credential::cache_key_lines(choice, env, &mut line);
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VaultConfig {
        VaultConfig::new("https://contoso.vault.azure.net/").unwrap()
    }

    fn sp(secret: &str) -> CredentialEnv {
        CredentialEnv::from_pairs([
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", secret),
        ])
    }

    #[test]
    fn key_changes_with_vault_identity_and_credential_material() {
        let base = cache_key(&config(), &sp("s1"));
        assert_eq!(base, cache_key(&config(), &sp("s1")));
        assert_eq!(base.len(), 32);
        assert_ne!(base, cache_key(&config(), &sp("s2")));
        let other_vault = VaultConfig::new("https://fabrikam.vault.azure.net/").unwrap();
        assert_ne!(base, cache_key(&other_vault, &sp("s1")));
        let mut pinned = config();
        pinned.credential = CredentialChoice::Environment;
        assert_ne!(base, cache_key(&pinned, &sp("s1")));
        let mut env = sp("s1");
        env.set("AZURE_AUTHORITY_HOST", "https://login.example");
        assert_ne!(base, cache_key(&config(), &env));
        let mi = |header: &str| {
            CredentialEnv::from_pairs([
                ("IDENTITY_ENDPOINT", "https://127.0.0.1:1/msi/token"),
                ("IDENTITY_HEADER", header),
            ])
        };
        assert_ne!(
            cache_key(&config(), &mi("h1")),
            cache_key(&config(), &mi("h2"))
        );
        // The key never carries the material itself.
        assert!(!base.contains("s1"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        let wi = || {
            CredentialEnv::from_pairs([
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
            ])
        };
        std::fs::write(&file, "pod-a").unwrap();
        let pod_a = cache_key(&config(), &wi());
        std::fs::write(&file, "pod-b").unwrap();
        // Pods of one app: same path, their own token, their own entry.
        assert_ne!(pod_a, cache_key(&config(), &wi()));
    }

    #[test]
    fn each_ci_job_gets_its_own_key() {
        // A later job on the same runner must not reuse an earlier job's access token: the
        // federated credential's subject (branch, environment) is checked per exchange.
        let gitlab = |token: &str| {
            let mut e = CredentialEnv::from_pairs([
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_ID_TOKEN", token),
            ]);
            e.set_id_token_variable(Some("AZURE_ID_TOKEN"));
            cache_key(&config(), &e)
        };
        assert_ne!(gitlab("job-1-token"), gitlab("job-2-token"));
        let github = |url: &str| {
            cache_key(
                &config(),
                &CredentialEnv::from_pairs([
                    ("AZURE_TENANT_ID", "t"),
                    ("AZURE_CLIENT_ID", "c"),
                    ("ACTIONS_ID_TOKEN_REQUEST_URL", url),
                    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "r"),
                ]),
            )
        };
        assert_ne!(
            github("https://pipelines.actions.githubusercontent.com/a/00000000-0000-0000-0000-000000000001/idtoken"),
            github("https://pipelines.actions.githubusercontent.com/a/00000000-0000-0000-0000-000000000002/idtoken")
        );
    }

    #[test]
    fn scope_keys_differ_by_scope_and_from_the_vault_key() {
        let env = sp("s1");
        let key = |scope: &str| identity_key(("scope", scope), CredentialChoice::Auto, &env);
        assert_ne!(key("api://hg-proxy/.default"), key("api://other/.default"));
        assert_ne!(key("api://hg-proxy/.default"), cache_key(&config(), &env));
        assert_eq!(
            key("api://hg-proxy/.default"),
            key("api://hg-proxy/.default")
        );
        // Another identity, another entry.
        assert_ne!(
            key("api://hg-proxy/.default"),
            identity_key(
                ("scope", "api://hg-proxy/.default"),
                CredentialChoice::Auto,
                &sp("s2")
            )
        );
    }

    #[test]
    fn fresh_until_keeps_a_margin() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            fresh_until(now, now + TimeDelta::hours(1)),
            now + TimeDelta::minutes(55)
        );
        assert_eq!(
            fresh_until(now, now + TimeDelta::seconds(10)),
            now + TimeDelta::seconds(5)
        );
        assert_eq!(fresh_until(now, now - TimeDelta::seconds(1)), now);
    }
}
