//! The Azure Key Vault store: refs in, bytes out, every outcome mapped to one [`ErrorKind`]
//! with a message and a hint, every operation bounded by the configured timeout.

use crate::cache_seal::CacheSeal;
use crate::config::VaultConfig;
use crate::credential::{CredentialChain, CredentialEnv, Identity};
use crate::error::{Error, ErrorKind, Result};
use crate::name::secret_name;
use crate::secret::SecretValue;
use crate::secret_cache::SecretCache;
use crate::secret_ref::SecretRef;
pub use crate::store::{Deleted, Secret, SecretProperties, SetOptions, REF_TAG};
use crate::token_cache::{cache_key, TokenCache};
use crate::token_policy::CachedTokenPolicy;
use crate::transport::{self, secs, OPERATION};
use azure_core::credentials::TokenCredential;
use azure_security_keyvault_secrets::{
    models::{
        SecretAttributes, SecretClientGetSecretOptions, SecretClientListSecretPropertiesOptions,
        SetSecretParameters,
    },
    SecretClient, SecretClientOptions,
};
use base64::Engine as _;
use futures::TryStreamExt;
use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};
use zeroize::{Zeroize, Zeroizing};

use crate::vault_errors::{map_sdk_error, not_a_secret, not_found, Access, ErrorContext};
use crate::vault_values::{
    check_limits, check_ref_tag, check_usable, check_version, decode_value, properties_of, split_id,
};
pub use crate::vault_values::{
    CONTENT_TYPE, MAX_STORED_VALUE_CHARS, MAX_TAGS, MAX_TAG_CHARS, MAX_VALUE_BYTES,
};

/// Secrets fetched at once by [`KeyVaultStore::get_many`] (and so connections per store).
pub const MAX_PARALLEL_REQUESTS: usize = 8;

pub use crate::store::{CacheStatus, ValueSource};

/// An Azure Key Vault behind the official SDK, with the core's credential chain.
pub struct KeyVaultStore {
    config: VaultConfig,
    client: SecretClient,
    chain: Arc<CredentialChain>,
    tokens: Option<Arc<TokenCache>>,
    secrets: Option<SecretCache>,
}

impl std::fmt::Debug for KeyVaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultStore")
            .field("vault_url", &self.config.vault_url.as_str())
            .field("chain", &self.chain)
            .finish_non_exhaustive()
    }
}

impl KeyVaultStore {
    /// A store for `config`, with credentials from the process environment.
    pub fn new(config: &VaultConfig) -> Result<Self> {
        Self::with_env(
            config,
            &CredentialEnv::from_process_with_id_token(config.id_token_env.as_deref()),
        )
    }

    /// A store for `config`, with credentials from `env` (not the process environment).
    pub fn with_env(config: &VaultConfig, env: &CredentialEnv) -> Result<Self> {
        config.validate()?;
        let mut env = env.clone();
        env.set_id_token_variable(config.id_token_env.as_deref());
        let env = &env;
        let (options, direct) = transport::store_options(config)?;
        let chain = Arc::new(CredentialChain::with_direct(
            config.credential,
            env,
            &options,
            &direct,
        )?);
        let tokens = config
            .token_cache
            .then(|| Arc::new(TokenCache::new(config, env, chain.clone())));
        let secrets = config.secret_cache_ttl.and_then(|ttl| {
            let namespace = tokens
                .as_ref()
                .map_or_else(|| cache_key(config, env), |t| t.key().to_owned());
            SecretCache::open(
                Some(ttl),
                &namespace,
                CacheSeal::new(config, env),
                chain.clone(),
            )
        });
        let mut vault_options = options;
        let credential: Arc<dyn TokenCredential> = match &tokens {
            Some(t) => {
                // Only the vault client's pipeline: credentials never see a vault token.
                vault_options
                    .per_try_policies
                    .push(Arc::new(CachedTokenPolicy::new(
                        t.clone(),
                        &config.vault_url,
                        config.verify_challenge_resource,
                    )));
                t.clone()
            }
            None => chain.clone(),
        };
        let client = SecretClient::new(
            config.vault_url.as_str(),
            credential,
            Some(SecretClientOptions {
                client_options: vault_options,
                verify_challenge_resource: Some(config.verify_challenge_resource),
                ..Default::default()
            }),
        )
        .map_err(|e| {
            Error::bad_config(format!(
                "cannot set up a Key Vault client for {}: {}",
                config.vault_url,
                crate::credential::sanitize_sdk_message(&e.to_string())
            ))
            .with_hint("check keyvault.url")
        })?;
        Ok(Self {
            config: config.clone(),
            client,
            chain,
            tokens,
            secrets,
        })
    }

    /// What the caches are and where the last token came from.
    pub fn cache_status(&self) -> CacheStatus {
        CacheStatus {
            token_store: self.tokens.as_ref().map(|t| t.store()),
            token_source: self.tokens.as_ref().and_then(|t| t.last_source()),
            secret_cache_ttl: self.secrets.as_ref().map(SecretCache::ttl),
            secret_cache_unavailable: self.secrets.is_none()
                && self
                    .config
                    .secret_cache_ttl
                    .is_some_and(|t| t.as_secs() > 0),
        }
    }

    /// Like [`Self::get`], but served from the secret cache when it is on and holds the value
    /// (and filling it otherwise).
    pub async fn read(
        &self,
        secret_ref: &SecretRef,
        version: Option<&str>,
    ) -> Result<(Secret, ValueSource)> {
        let Some(cache) = &self.secrets else {
            return Ok((self.get(secret_ref, version).await?, ValueSource::Vault));
        };
        let name = self.name_for(secret_ref)?;
        let version = version.or(secret_ref.version());
        if let Some(hit) = cache.get(&name, version) {
            return Ok((hit.secret, ValueSource::SecretCache(hit.remaining)));
        }
        let secret = self.get(secret_ref, version).await?;
        cache.put(&name, version, &secret);
        Ok((secret, ValueSource::Vault))
    }

    /// How much longer the secret cache keeps the current value of `secret_ref`, if it has it.
    pub fn cached_for(&self, secret_ref: &SecretRef) -> Option<Duration> {
        let cache = self.secrets.as_ref()?;
        let name = self.name_for(secret_ref).ok()?;
        cache
            .get(&name, secret_ref.version())
            .map(|hit| hit.remaining)
    }

    /// Drops the secret cache's copy of `secret_ref` (after a rotation or a rejection).
    pub fn forget_cached(&self, secret_ref: &SecretRef) {
        if let (Some(cache), Ok(name)) = (&self.secrets, self.name_for(secret_ref)) {
            cache.forget(&name, secret_ref.version());
        }
    }

    /// [`Self::get`] of many secrets, at most [`MAX_PARALLEL_REQUESTS`] in flight; results in
    /// the order of `refs`, each under its own deadline.
    pub async fn get_many(&self, refs: &[SecretRef]) -> Vec<Result<Secret>> {
        use futures::StreamExt;
        futures::stream::iter(refs)
            .map(|r| self.get(r, None))
            .buffered(MAX_PARALLEL_REQUESTS)
            .collect()
            .await
    }

    /// The configuration this store was built with.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// True when some credential link applies; when none does, operations fail with the chain's
    /// list of reasons before any request (the token cache's policy sees to it).
    pub fn identity_applies(&self) -> bool {
        self.chain.any_applies()
    }

    /// The credential link that got a token, once one did.
    pub fn selected_link(&self) -> Option<crate::config::CredentialChoice> {
        self.chain.selected_link()
    }

    /// The current version of a secret (or `version`, or the version a Key Vault identifier names).
    pub async fn get(&self, secret_ref: &SecretRef, version: Option<&str>) -> Result<Secret> {
        let name = self.name_for(secret_ref)?;
        let version = check_version(version.or(secret_ref.version()))?;
        let mut ctx = self.context(Access::Read, secret_ref, &name);
        ctx.version = version.clone();
        self.bounded(async {
            let options = SecretClientGetSecretOptions {
                secret_version: version.clone(),
                ..Default::default()
            };
            let rsp = self
                .client
                .get_secret(&name, Some(options))
                .await
                .map_err(|e| self.map_error(&e, &ctx))?;
            let mut model = rsp.into_model().map_err(|_| not_a_secret(&ctx))?;
            let raw = model.value.take();
            let properties = properties_of(
                model.id.as_deref(),
                model.attributes.as_ref(),
                model.content_type.clone(),
                model.tags.take(),
                &name,
            );
            let value = decode_value(raw, properties.content_type.as_deref(), &ctx)?;
            check_usable(&properties, &ctx)?;
            check_ref_tag(secret_ref, &properties, &ctx)?;
            Ok(Secret { value, properties })
        })
        .await
    }

    /// Stores `value` as a new version (rotation keeps the ref).
    pub async fn set(
        &self,
        secret_ref: &SecretRef,
        value: &SecretValue,
        options: SetOptions,
    ) -> Result<SecretProperties> {
        if secret_ref.version().is_some() {
            return Err(Error::bad_ref(format!(
                "cannot store a value under {}: it names a specific version",
                secret_ref
            ))
            .with_hint("drop the /VERSION part; storing always creates a new version"));
        }
        let name = self.name_for(secret_ref)?;
        let ctx = self.context(Access::Write, secret_ref, &name);
        let mut tags: HashMap<String, String> = options.tags.into_iter().collect();
        tags.insert(REF_TAG.to_owned(), secret_ref.as_str().to_owned());
        check_limits(value, &tags, &ctx)?;
        let encoded =
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(value.expose()));
        let parameters = SetSecretParameters {
            content_type: Some(CONTENT_TYPE.to_owned()),
            secret_attributes: Some(SecretAttributes {
                enabled: Some(true),
                expires: options.expires,
                ..Default::default()
            }),
            tags: Some(tags),
            value: Some(encoded.to_string()),
        };
        let stored = self
            .bounded(async {
                let body = parameters.try_into().map_err(|_| {
                    Error::new(ErrorKind::Service, "cannot encode the request")
                        .with_hint("please report this as a bug")
                })?;
                let rsp = self
                    .client
                    .set_secret(&name, body, None)
                    .await
                    .map_err(|e| self.map_error(&e, &ctx))?;
                let mut model = rsp.into_model().map_err(|_| not_a_secret(&ctx))?;
                if let Some(mut echoed) = model.value.take() {
                    echoed.zeroize();
                }
                Ok(properties_of(
                    model.id.as_deref(),
                    model.attributes.as_ref(),
                    model.content_type.clone(),
                    model.tags.take(),
                    &name,
                ))
            })
            .await?;
        // Readers must see the new version, not the cached old one.
        self.forget_cached(secret_ref);
        Ok(stored)
    }

    /// Deletes the secret (all versions). Key Vault keeps it recoverable (soft delete) until
    /// its scheduled purge date; `az keyvault secret recover` brings it back.
    pub async fn delete(&self, secret_ref: &SecretRef) -> Result<Deleted> {
        if secret_ref.version().is_some() {
            return Err(
                Error::bad_ref(format!("cannot delete only one version of {secret_ref}"))
                    .with_hint("drop the /VERSION part; deleting removes every version"),
            );
        }
        let name = self.name_for(secret_ref)?;
        let ctx = self.context(Access::Write, secret_ref, &name);
        self.bounded(async {
            let rsp = self
                .client
                .delete_secret(&name, None)
                .await
                .map_err(|e| self.map_error(&e, &ctx))?;
            let mut model = rsp.into_model().map_err(|_| not_a_secret(&ctx))?;
            if let Some(mut echoed) = model.value.take() {
                echoed.zeroize();
            }
            Ok(Deleted {
                name: name.clone(),
                recoverable: model.recovery_id.is_some(),
                scheduled_purge: model.scheduled_purge_date,
            })
        })
        .await
    }

    /// What errors of `ping` and `list` talk about: reading the vault's list of secrets.
    fn list_context(&self) -> ErrorContext {
        ErrorContext {
            access: Access::Read,
            vault: self.config.vault_url.to_string(),
            subject: "the list of secrets".to_owned(),
            secret_ref: None,
            version: None,
            identity: None,
        }
    }

    /// One authenticated round trip that touches no value (the first list page, one item): proves
    /// that the vault answers and lets this identity read it. `hg vault` times it.
    pub async fn ping(&self) -> Result<()> {
        let ctx = self.list_context();
        self.bounded(async {
            let options = SecretClientListSecretPropertiesOptions {
                maxresults: Some(1),
                ..Default::default()
            };
            let mut pager = self
                .client
                .list_secret_properties(Some(options))
                .map_err(|e| self.map_error(&e, &ctx))?;
            pager
                .try_next()
                .await
                .map_err(|e| self.map_error(&e, &ctx))?;
            Ok(())
        })
        .await
    }

    /// Every secret of the vault (all pages), with refs read from the tag.
    pub async fn list(&self) -> Result<Vec<SecretProperties>> {
        let ctx = self.list_context();
        self.bounded(async {
            let mut pager = self
                .client
                .list_secret_properties(None)
                .map_err(|e| self.map_error(&e, &ctx))?;
            let mut out = Vec::new();
            while let Some(item) = pager
                .try_next()
                .await
                .map_err(|e| self.map_error(&e, &ctx))?
            {
                let name = item
                    .id
                    .as_deref()
                    .and_then(|id| split_id(id).0)
                    .unwrap_or_default();
                out.push(properties_of(
                    item.id.as_deref(),
                    item.attributes.as_ref(),
                    item.content_type.clone(),
                    item.tags.clone(),
                    &name,
                ));
            }
            Ok(out)
        })
        .await
    }

    /// Every version of a secret, oldest first, the current version last (the one a get without
    /// version returns: neither the list's order nor `created`, which has one-second
    /// resolution, says which it is).
    pub async fn versions(&self, secret_ref: &SecretRef) -> Result<Vec<SecretProperties>> {
        let name = self.name_for(secret_ref)?;
        let ctx = self.context(Access::Read, secret_ref, &name);
        self.bounded(async {
            let mut versions = self.versions_of(&name, &ctx).await?;
            if let Some(current) = self.current_version(&name, &ctx).await? {
                if let Some(at) = versions.iter().position(|p| p.version == current.version) {
                    let current = versions.remove(at);
                    versions.push(current);
                }
            }
            Ok(versions)
        })
        .await
    }

    /// Properties of the current version (or of the version the identifier names). Disabled,
    /// expired and not-yet-valid secrets answer too.
    pub async fn properties(&self, secret_ref: &SecretRef) -> Result<SecretProperties> {
        let name = self.name_for(secret_ref)?;
        let mut ctx = self.context(Access::Read, secret_ref, &name);
        ctx.version = secret_ref.version().map(str::to_owned);
        self.bounded(async {
            if secret_ref.version().is_none() {
                if let Some(current) = self.current_version(&name, &ctx).await? {
                    return Ok(current);
                }
            }
            let versions = self.versions_of(&name, &ctx).await?;
            let found = match secret_ref.version() {
                Some(v) => versions
                    .into_iter()
                    .find(|p| p.version.as_deref() == Some(v)),
                // A disabled current version: the newest by `created` is the best guess left.
                None => versions.into_iter().last(),
            };
            found.ok_or_else(|| not_found(&ctx, &self.chain.identity()))
        })
        .await
    }

    /// The current version's properties, from a get without version (the value is dropped at
    /// once). `None` when the vault will not say that way: the current version is disabled, or
    /// the identity may list but not get (then the version list is all there is).
    async fn current_version(
        &self,
        name: &str,
        ctx: &ErrorContext,
    ) -> Result<Option<SecretProperties>> {
        let rsp = match self.client.get_secret(name, None).await {
            Ok(rsp) => rsp,
            Err(e) => {
                let err = self.map_error(&e, ctx);
                return match err.kind() {
                    ErrorKind::Disabled | ErrorKind::Forbidden => Ok(None),
                    _ => Err(err),
                };
            }
        };
        let mut model = rsp.into_model().map_err(|_| not_a_secret(ctx))?;
        if let Some(mut value) = model.value.take() {
            value.zeroize();
        }
        Ok(Some(properties_of(
            model.id.as_deref(),
            model.attributes.as_ref(),
            model.content_type.clone(),
            model.tags.take(),
            name,
        )))
    }

    /// The identity the vault sees; gets a token first if none was obtained yet.
    pub async fn identity(&self) -> Result<Identity> {
        if let Some(identity) = self.chain.identity() {
            return Ok(identity);
        }
        // A cached token names the identity too (and adopting it sets the chain's).
        if let Some(identity) = self
            .tokens
            .as_ref()
            .and_then(|t| t.fresh(None))
            .and_then(|_| self.chain.identity())
        {
            return Ok(identity);
        }
        let ctx = ErrorContext {
            access: Access::Read,
            vault: self.config.vault_url.to_string(),
            subject: "a token".to_owned(),
            secret_ref: None,
            version: None,
            identity: None,
        };
        let scope = vault_scope(&self.config.vault_url);
        self.bounded(async {
            self.chain
                .get_token(&[scope.as_str()], None)
                .await
                .map_err(|e| self.map_error(&e, &ctx))?;
            self.chain.identity().ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    "no identity after getting a token",
                )
                .with_hint("please report this as a bug")
            })
        })
        .await
    }

    async fn versions_of(&self, name: &str, ctx: &ErrorContext) -> Result<Vec<SecretProperties>> {
        let mut pager = self
            .client
            .list_secret_properties_versions(name, None)
            .map_err(|e| self.map_error(&e, ctx))?;
        let mut out = Vec::new();
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(|e| self.map_error(&e, ctx))?
        {
            out.push(properties_of(
                item.id.as_deref(),
                item.attributes.as_ref(),
                item.content_type.clone(),
                item.tags.clone(),
                name,
            ));
        }
        if out.is_empty() {
            return Err(not_found(ctx, &self.chain.identity()));
        }
        // Stable: versions created in the same second keep the service's order.
        out.sort_by_key(|p| p.created);
        Ok(out)
    }

    fn name_for(&self, secret_ref: &SecretRef) -> Result<String> {
        if secret_ref.arn().is_some() {
            return Err(Error::bad_ref(format!(
                "{secret_ref} is a Secrets Manager ARN, which the azure provider cannot read"
            ))
            .with_hint(
                "use a secret:// ref or a Key Vault identifier, or set keyvault.provider = aws",
            ));
        }
        if let Some(url) = secret_ref.vault_url() {
            let configured = &self.config.vault_url;
            let same = url.host_str().map(str::to_ascii_lowercase)
                == configured.host_str().map(str::to_ascii_lowercase)
                && url.port_or_known_default() == configured.port_or_known_default();
            if !same {
                return Err(Error::bad_ref(format!(
                    "{secret_ref} belongs to the vault {url}, but keyvault.url is {configured}"
                ))
                .with_hint("use a secret:// ref, or an identifier of the configured vault"));
            }
        }
        Ok(secret_name(secret_ref, &self.config.name_prefix))
    }

    fn context(&self, access: Access, secret_ref: &SecretRef, name: &str) -> ErrorContext {
        let subject = if secret_ref.is_vault_id() {
            format!("secret {name}")
        } else {
            format!("secret {secret_ref} ({name})")
        };
        ErrorContext {
            access,
            vault: self.config.vault_url.to_string(),
            subject,
            secret_ref: Some(secret_ref.as_str().to_owned()),
            version: None,
            identity: None,
        }
    }

    fn map_error(&self, err: &azure_core::Error, ctx: &ErrorContext) -> Error {
        let mut ctx = ctx.clone();
        ctx.identity = self.chain.identity();
        map_sdk_error(err, &ctx)
    }

    /// Runs `fut` under the operation's deadline (token + vault round trips + retries).
    async fn bounded<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let op = transport::Operation::new(self.config.timeout);
        let outcome =
            tokio::time::timeout(self.config.timeout, OPERATION.scope(op.clone(), fut)).await;
        // For audit trails: the id Key Vault's diagnostic logs record for this access.
        crate::store::record_request_id(op.last_request_id_to(self.config.vault_url.as_str()));
        match outcome {
            Ok(result) => result,
            Err(_) => {
                let url = op
                    .in_flight()
                    .unwrap_or_else(|| self.config.vault_url.to_string());
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no answer from {url} within {} (keyvault.timeout)",
                        secs(self.config.timeout)
                    ),
                )
                .with_hint(
                    "raise keyvault.timeout, or check the network (proxy, firewall, VPN) between here and the vault",
                ))
            }
        }
    }
}

/// The token scope for a vault host (sovereign clouds have their own).
fn vault_scope(vault: &url::Url) -> String {
    let host = vault.host_str().unwrap_or_default();
    for suffix in [
        "vault.azure.cn",
        "vault.usgovcloudapi.net",
        "vault.microsoftazure.de",
        "managedhsm.azure.net",
    ] {
        if host.ends_with(&format!(".{suffix}")) {
            return format!("https://{suffix}/.default");
        }
    }
    "https://vault.azure.net/.default".to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// (system root loads, reqwest clients built) on this thread while `f` runs.
    pub(crate) fn setup_cost(f: impl FnOnce()) -> (usize, usize) {
        let loads = || crate::system_roots::LOADS.with(|n| n.get());
        let clients = || transport::CLIENTS_BUILT.with(|n| n.get());
        let (l, c) = (loads(), clients());
        f();
        (loads() - l, clients() - c)
    }

    #[test]
    fn a_store_reads_the_roots_once_and_builds_the_host_local_client_only_when_asked() {
        // A host-local link (App Service) applies besides the service principal: its client
        // (no proxy) is still not built, as no request has gone to its endpoint.
        let env = CredentialEnv::from_pairs([
            ("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000001"),
            ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000002"),
            ("AZURE_CLIENT_SECRET", "not-a-real-secret"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
            ("IDENTITY_HEADER", "not-a-real-header"),
        ]);
        let config = VaultConfig::new("https://contoso.vault.azure.net/").unwrap();
        let cost = setup_cost(|| {
            let store = KeyVaultStore::with_env(&config, &env).unwrap();
            assert!(store.identity_applies());
        });
        assert_eq!(cost, (1, 1), "(root loads, clients built)");
    }

    #[test]
    fn scopes_follow_the_cloud() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(
            vault_scope(&u("https://a.vault.azure.net/")),
            "https://vault.azure.net/.default"
        );
        assert_eq!(
            vault_scope(&u("https://a.vault.azure.cn/")),
            "https://vault.azure.cn/.default"
        );
        assert_eq!(
            vault_scope(&u("https://127.0.0.1:1/")),
            "https://vault.azure.net/.default"
        );
    }
}
