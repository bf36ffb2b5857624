//! The one place that owns an async runtime: a tokio current-thread runtime plus a
//! [`KeyVaultStore`], behind synchronous methods for the bindings (which release the GIL
//! around them).
//!
//! Mercurial's chg forks its server process for each command. A runtime, its reactor and the
//! pooled connections must never be used on both sides of a fork: they live in a
//! [`ForkLocal`], so a child builds a new runtime and new clients (and leaks the inherited ones
//! rather than dropping them).

use crate::azure::{
    CacheStatus, Deleted, KeyVaultStore, Secret, SecretProperties, SetOptions, ValueSource,
};
use crate::config::{CredentialChoice, VaultConfig};
use crate::credential::{CredentialEnv, Identity};
use crate::error::{Error, ErrorKind, Result};
use crate::fork_local::{ForkLocal, ForkLocalGuard};
use crate::secret::SecretValue;
use crate::secret_ref::SecretRef;
use crate::store::{Provider, SecretStore, StoreIdentity, StoreInfo};

#[derive(Debug)]
enum EnvSource {
    /// Read the process environment when (re)building: chg's forked worker gets the client's
    /// environment, so a child must look again.
    Process,
    Fixed(CredentialEnv),
}

struct Live {
    runtime: tokio::runtime::Runtime,
    store: KeyVaultStore,
}

/// A synchronous vault session. Methods take `&self` and serialise on an internal lock.
pub struct Session {
    config: VaultConfig,
    env: EnvSource,
    live: ForkLocal<Live>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("vault_url", &self.config.vault_url.as_str())
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

/// Blocks on one store method, in a live (post-fork-safe) runtime.
macro_rules! run {
    ($session:expr, $method:ident($($arg:expr),*)) => {{
        let live = $session.live()?;
        live.runtime.block_on(live.store.$method($($arg),*))
    }};
}

impl Session {
    /// A session with credentials from the process environment.
    pub fn new(config: &VaultConfig) -> Result<Session> {
        Self::build(config, EnvSource::Process)
    }

    /// A session with credentials from `env` only.
    pub fn with_env(config: &VaultConfig, env: CredentialEnv) -> Result<Session> {
        Self::build(config, EnvSource::Fixed(env))
    }

    fn build(config: &VaultConfig, env: EnvSource) -> Result<Session> {
        config.validate()?;
        let session = Session {
            config: config.clone(),
            env,
            live: ForkLocal::new(),
        };
        // Fail early on configuration errors (CA bundle, authority host...).
        drop(session.live()?);
        Ok(session)
    }

    /// The configuration.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    fn make_live(&self) -> Result<Live> {
        let runtime = io_runtime()?;
        let store = {
            let _guard = runtime.enter();
            match &self.env {
                EnvSource::Process => KeyVaultStore::new(&self.config)?,
                EnvSource::Fixed(env) => KeyVaultStore::with_env(&self.config, env)?,
            }
        };
        Ok(Live { runtime, store })
    }

    fn live(&self) -> Result<ForkLocalGuard<'_, Live>> {
        self.live.get_or_try_init(|| self.make_live())
    }

    /// See [`KeyVaultStore::get`].
    pub fn get(&self, secret_ref: &SecretRef, version: Option<&str>) -> Result<Secret> {
        run!(self, get(secret_ref, version))
    }

    /// See [`KeyVaultStore::read`].
    pub fn read(
        &self,
        secret_ref: &SecretRef,
        version: Option<&str>,
    ) -> Result<(Secret, ValueSource)> {
        run!(self, read(secret_ref, version))
    }

    /// See [`KeyVaultStore::get_many`].
    pub fn get_many(&self, refs: &[SecretRef]) -> Result<Vec<Result<Secret>>> {
        Ok(run!(self, get_many(refs)))
    }

    /// See [`KeyVaultStore::cache_status`].
    pub fn cache_status(&self) -> Result<CacheStatus> {
        Ok(self.live()?.store.cache_status())
    }

    /// See [`KeyVaultStore::cached_for`].
    pub fn cached_for(&self, secret_ref: &SecretRef) -> Result<Option<std::time::Duration>> {
        Ok(self.live()?.store.cached_for(secret_ref))
    }

    /// See [`KeyVaultStore::forget_cached`].
    pub fn forget_cached(&self, secret_ref: &SecretRef) -> Result<()> {
        self.live()?.store.forget_cached(secret_ref);
        Ok(())
    }

    /// See [`KeyVaultStore::set`].
    pub fn set(
        &self,
        secret_ref: &SecretRef,
        value: &SecretValue,
        options: SetOptions,
    ) -> Result<SecretProperties> {
        run!(self, set(secret_ref, value, options))
    }

    /// See [`KeyVaultStore::delete`].
    pub fn delete(&self, secret_ref: &SecretRef) -> Result<Deleted> {
        run!(self, delete(secret_ref))
    }

    /// See [`KeyVaultStore::ping`].
    pub fn ping(&self) -> Result<()> {
        run!(self, ping())
    }

    /// See [`KeyVaultStore::list`].
    pub fn list(&self) -> Result<Vec<SecretProperties>> {
        run!(self, list())
    }

    /// See [`KeyVaultStore::versions`].
    pub fn versions(&self, secret_ref: &SecretRef) -> Result<Vec<SecretProperties>> {
        run!(self, versions(secret_ref))
    }

    /// See [`KeyVaultStore::properties`].
    pub fn properties(&self, secret_ref: &SecretRef) -> Result<SecretProperties> {
        run!(self, properties(secret_ref))
    }

    /// See [`KeyVaultStore::identity`].
    pub fn identity(&self) -> Result<Identity> {
        run!(self, identity())
    }

    /// The credential link that got a token, once one did (in this process).
    pub fn selected_link(&self) -> Option<CredentialChoice> {
        self.live.peek()?.store.selected_link()
    }

    /// True when some credential link applies (see [`KeyVaultStore::identity_applies`]).
    pub fn identity_applies(&self) -> bool {
        self.live().is_ok_and(|live| live.store.identity_applies())
    }

    /// The pid the runtime and clients were built in (for tests of the fork handling).
    pub fn built_in_pid(&self) -> Option<u32> {
        self.live.built_in_pid()
    }
}

impl SecretStore for Session {
    fn provider(&self) -> Provider {
        Provider::Azure
    }

    fn url(&self) -> Option<String> {
        Some(self.config.vault_url.to_string())
    }

    fn name_of(&self, secret_ref: &SecretRef) -> Result<String> {
        Ok(crate::name::secret_name(
            secret_ref,
            &self.config.name_prefix,
        ))
    }

    fn info(&self) -> StoreInfo {
        StoreInfo {
            provider: Provider::Azure,
            location: self.config.vault_url.to_string(),
            detail: None,
            label: "vault",
            location_key: "url",
            credential: Some(self.config.credential.as_str()),
        }
    }

    fn read(&self, secret_ref: &SecretRef, version: Option<&str>) -> Result<(Secret, ValueSource)> {
        Session::read(self, secret_ref, version)
    }

    fn get_many(&self, refs: &[SecretRef]) -> Result<Vec<Result<Secret>>> {
        Session::get_many(self, refs)
    }

    fn cache_status(&self) -> Result<Option<CacheStatus>> {
        Session::cache_status(self).map(Some)
    }

    fn cached_for(&self, secret_ref: &SecretRef) -> Result<Option<std::time::Duration>> {
        Session::cached_for(self, secret_ref)
    }

    fn forget_cached(&self, secret_ref: &SecretRef) -> Result<()> {
        Session::forget_cached(self, secret_ref)
    }

    fn identity(&self) -> Result<Option<StoreIdentity>> {
        Ok(Some(Session::identity(self)?.into()))
    }

    fn selected_link(&self) -> Option<&'static str> {
        Session::selected_link(self).map(CredentialChoice::as_str)
    }

    fn applies(&self) -> bool {
        self.identity_applies()
    }

    fn get(&self, secret_ref: &SecretRef, version: Option<&str>) -> Result<Secret> {
        Session::get(self, secret_ref, version)
    }

    fn set(
        &self,
        secret_ref: &SecretRef,
        value: &SecretValue,
        options: SetOptions,
    ) -> Result<SecretProperties> {
        Session::set(self, secret_ref, value, options)
    }

    fn properties(&self, secret_ref: &SecretRef) -> Result<SecretProperties> {
        Session::properties(self, secret_ref)
    }

    fn versions(&self, secret_ref: &SecretRef) -> Result<Vec<SecretProperties>> {
        Session::versions(self, secret_ref)
    }

    fn list(&self) -> Result<Vec<SecretProperties>> {
        Session::list(self)
    }

    fn delete(&self, secret_ref: &SecretRef) -> Result<Deleted> {
        Session::delete(self, secret_ref)
    }

    fn ping(&self) -> Result<()> {
        Session::ping(self)
    }
}
/// The short-lived current-thread runtime a session (vault or token) drives its I/O with; one
/// per process, rebuilt after a fork (chg).
pub(crate) fn io_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Service,
                format!("cannot start the I/O runtime: {e}"),
            )
            .with_hint("check the process's limits on threads and file descriptors")
        })
}
