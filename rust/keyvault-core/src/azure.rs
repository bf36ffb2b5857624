//! The Azure Key Vault store: refs in, bytes out, every outcome mapped to one [`ErrorKind`]
//! with a message and a hint, every operation bounded by the configured timeout.

use crate::cache_seal::CacheSeal;
use crate::config::VaultConfig;
use crate::credential::{ChainFailure, CredentialChain, CredentialEnv, Identity};
use crate::error::{Error, ErrorKind, Result};
use crate::name::secret_name;
use crate::secret::SecretValue;
use crate::secret_cache::SecretCache;
use crate::secret_ref::SecretRef;
use crate::state::SecretState;
pub use crate::store::{Deleted, Secret, SecretProperties, SetOptions, REF_TAG};
use crate::token_cache::{cache_key, TokenCache};
use crate::token_policy::CachedTokenPolicy;
use crate::transport::{self, secs, TransportFailure, OPERATION};
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
use std::{collections::BTreeMap, collections::HashMap, future::Future, sync::Arc, time::Duration};
use zeroize::{Zeroize, Zeroizing};

/// Content type of values written by hg-keyvault: the bytes, Base64 (standard alphabet).
pub const CONTENT_TYPE: &str = "application/octet-stream;base64";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// What an error message talks about.
#[derive(Clone, Debug)]
pub(crate) struct ErrorContext {
    pub(crate) access: Access,
    pub(crate) vault: String,
    /// `secret secret://a/b (hg-...)`, or `the secret list`.
    pub(crate) subject: String,
    pub(crate) secret_ref: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) identity: Option<Identity>,
}

/// Key Vault's limits on what it stores ("About Azure Key Vault secrets" and the service's
/// `400 BadParameter` / `SecretTooLarge` "Secret is beyond the maximum permitted length of 25600
/// characters."): a value of at most 25,600 characters as stored, which for our Base64 is
/// 19,200 bytes; at most 15 tags of at most 512 characters (name and value).
pub const MAX_STORED_VALUE_CHARS: usize = 25_600;
/// The largest value (bytes) whose Base64 fits in [`MAX_STORED_VALUE_CHARS`].
pub const MAX_VALUE_BYTES: usize = MAX_STORED_VALUE_CHARS / 4 * 3;
/// Most tags on one secret (our ref tag included).
pub const MAX_TAGS: usize = 15;
/// Longest tag name or value, in characters.
pub const MAX_TAG_CHARS: usize = 512;

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
        let http = transport::build_http_client(config)?;
        let options = transport::client_options(&http, config);
        let chain = Arc::new(CredentialChain::new(config.credential, env, &options)?);
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

fn check_version(version: Option<&str>) -> Result<Option<String>> {
    match version {
        None => Ok(None),
        Some(v)
            if !v.is_empty()
                && v.len() <= 64
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            Ok(Some(v.to_owned()))
        }
        Some(v) => Err(Error::bad_ref(format!(
            "'{}' is not a Key Vault secret version",
            v.escape_debug()
        ))
        .with_hint("a version is the last part of a secret identifier, letters and digits")),
    }
}

/// `(name, version)` from `https://host/secrets/NAME[/VERSION]`.
fn split_id(id: &str) -> (Option<String>, Option<String>) {
    let Ok(url) = url::Url::parse(id) else {
        return (None, None);
    };
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    match segments.as_slice() {
        ["secrets", name] => (Some((*name).to_owned()), None),
        ["secrets", name, version, ..] => (Some((*name).to_owned()), Some((*version).to_owned())),
        _ => (None, None),
    }
}

fn properties_of(
    id: Option<&str>,
    attributes: Option<&SecretAttributes>,
    content_type: Option<String>,
    tags: Option<HashMap<String, String>>,
    fallback_name: &str,
) -> SecretProperties {
    let (name, version) = id.map(split_id).unwrap_or((None, None));
    let tags: BTreeMap<String, String> = tags.unwrap_or_default().into_iter().collect();
    SecretProperties {
        secret_ref: tags.get(REF_TAG).cloned(),
        name: name.unwrap_or_else(|| fallback_name.to_owned()),
        version,
        id: id.map(str::to_owned),
        enabled: attributes.and_then(|a| a.enabled).unwrap_or(true),
        expires: attributes.and_then(|a| a.expires),
        not_before: attributes.and_then(|a| a.not_before),
        created: attributes.and_then(|a| a.created),
        updated: attributes.and_then(|a| a.updated),
        content_type,
        tags,
    }
}

/// Our values are Base64; anything else (secrets created by hand) is taken as UTF-8 text.
fn decode_value(
    raw: Option<String>,
    content_type: Option<&str>,
    ctx: &ErrorContext,
) -> Result<SecretValue> {
    let mut raw = raw.unwrap_or_default();
    let result = if content_type.is_some_and(|c| c.trim().eq_ignore_ascii_case(CONTENT_TYPE)) {
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map(SecretValue::new)
            .map_err(|_| {
                Error::new(
                    ErrorKind::Service,
                    format!(
                        "{} has content type {CONTENT_TYPE} but its value is not valid Base64",
                        ctx.subject
                    ),
                )
                .with_hint("store the value again with `hg vault set`")
            })
    } else {
        Ok(SecretValue::new(raw.as_bytes().to_vec()))
    };
    raw.zeroize();
    result
}

/// What Key Vault would refuse with `400 BadParameter`, said before sending (the value stays
/// here: only sizes go into the message).
fn check_limits(
    value: &SecretValue,
    tags: &HashMap<String, String>,
    ctx: &ErrorContext,
) -> Result<()> {
    let bytes = value.expose().len();
    if bytes > MAX_VALUE_BYTES {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "the value for {} is {bytes} bytes; Key Vault stores at most {MAX_VALUE_BYTES} \
                 bytes per secret (25,600 characters as Base64)",
                ctx.subject
            ),
        )
        .with_hint(
            "store a smaller value: split it over several refs, or keep the data elsewhere \
             and only its key in the vault",
        ));
    }
    if tags.len() > MAX_TAGS {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "{} would carry {} tags; Key Vault allows at most {MAX_TAGS} (hg-keyvault uses \
                 one for the ref)",
                ctx.subject,
                tags.len()
            ),
        )
        .with_hint("pass fewer --tag options"));
    }
    let longest = tags
        .iter()
        .map(|(k, v)| k.chars().count().max(v.chars().count()))
        .max()
        .unwrap_or(0);
    if longest > MAX_TAG_CHARS {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "a tag of {} is {longest} characters long; Key Vault allows at most \
                 {MAX_TAG_CHARS} per tag name or value",
                ctx.subject
            ),
        )
        .with_hint("shorten the tag"));
    }
    Ok(())
}

/// Key Vault hands out expired and not-yet-valid secrets (200): the state decides.
fn check_usable(p: &SecretProperties, ctx: &ErrorContext) -> Result<()> {
    match SecretState::now(p) {
        SecretState::Disabled => Err(disabled(ctx)),
        SecretState::Expired => Err(expired(ctx, false)),
        SecretState::NotYetValid => Err(expired(ctx, true)),
        _ => Ok(()),
    }
}

fn check_ref_tag(secret_ref: &SecretRef, p: &SecretProperties, ctx: &ErrorContext) -> Result<()> {
    match (&secret_ref, &p.secret_ref) {
        (SecretRef::Path(_), Some(tagged)) if tagged != secret_ref.as_str() => Err(Error::bad_ref(
            format!("{} is tagged as {tagged}, not {secret_ref}", ctx.subject),
        )
        .with_hint(
            "two refs map to the same name: check keyvault.name-prefix and the vault's tags",
        )),
        _ => Ok(()),
    }
}

fn set_hint(ctx: &ErrorContext) -> String {
    match &ctx.secret_ref {
        Some(r) => format!("store it with `hg vault set {r}`"),
        None => "store it with `hg vault set REF`".to_owned(),
    }
}

fn not_a_secret(ctx: &ErrorContext) -> Error {
    Error::new(
        ErrorKind::Service,
        format!(
            "the vault {} answered something that is not a secret for {}",
            ctx.vault, ctx.subject
        ),
    )
    .with_hint("check that keyvault.url points at an Azure Key Vault")
}

fn not_found(ctx: &ErrorContext, _identity: &Option<Identity>) -> Error {
    match &ctx.version {
        Some(v) => Error::new(
            ErrorKind::NotFound,
            format!("{} has no version {v} in vault {}", ctx.subject, ctx.vault),
        )
        .with_hint("leave out the version to get the current one"),
        None => Error::new(
            ErrorKind::NotFound,
            format!("{} does not exist in vault {}", ctx.subject, ctx.vault),
        )
        .with_hint(set_hint(ctx)),
    }
}

fn disabled(ctx: &ErrorContext) -> Error {
    Error::new(
        ErrorKind::Disabled,
        format!("{} is disabled in vault {}", ctx.subject, ctx.vault),
    )
    .with_hint(format!(
        "enable it in the vault (az keyvault secret set-attributes --enabled true), or {}",
        set_hint(ctx).replacen("store it", "store a new version", 1)
    ))
    .with_state(SecretState::Disabled)
}

fn expired(ctx: &ErrorContext, not_yet: bool) -> Error {
    // Both sentences spelled out: the drift test of docs/troubleshooting.md reads them.
    Error::new(
        ErrorKind::Expired,
        if not_yet {
            format!("{} is not valid yet in vault {}", ctx.subject, ctx.vault)
        } else {
            format!("{} has expired in vault {}", ctx.subject, ctx.vault)
        },
    )
    .with_hint(format!(
        "{}, or change its dates in the vault",
        set_hint(ctx).replacen("store it", "store a new version", 1)
    ))
    .with_state(if not_yet {
        SecretState::NotYetValid
    } else {
        SecretState::Expired
    })
}

/// The secret permission a vault with access policies names in its 403 ("does not have secrets
/// get permission"): only a known permission word is taken from the server's text.
fn policy_permission(body: &[u8]) -> Option<&'static str> {
    const KNOWN: [&str; 8] = [
        "get", "list", "set", "delete", "recover", "backup", "restore", "purge",
    ];
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = json.get("error")?.get("message")?.as_str()?;
    let word = message
        .split("does not have secrets ")
        .nth(1)?
        .split(' ')
        .next()?;
    KNOWN.into_iter().find(|k| k.eq_ignore_ascii_case(word))
}

/// `contoso` for `https://contoso.vault.azure.net/` (what `az keyvault` calls the vault's name).
fn vault_name(vault: &str) -> Option<String> {
    let host = url::Url::parse(vault)
        .ok()?
        .host_str()?
        .to_ascii_lowercase();
    let (name, domain) = host.split_once('.')?;
    let known = [
        "vault.azure.net",
        "vault.azure.cn",
        "vault.usgovcloudapi.net",
        "vault.microsoftazure.de",
    ];
    known.contains(&domain).then(|| name.to_owned())
}

fn denied_by_access_policy(ctx: &ErrorContext, code: &str, named: Option<&str>) -> Error {
    let who = ctx
        .identity
        .as_ref()
        .map_or_else(|| "the identity in use".to_owned(), Identity::describe);
    let permission = named.unwrap_or(match (ctx.access, &ctx.secret_ref) {
        (Access::Write, _) => "set",
        (Access::Read, None) => "list",
        (Access::Read, Some(_)) => "get",
    });
    let object = ctx
        .identity
        .as_ref()
        .and_then(|i| i.object_id.clone().or_else(|| i.client_id.clone()))
        .unwrap_or_else(|| "<object id>".to_owned());
    let name = vault_name(&ctx.vault).unwrap_or_else(|| "<vault name>".to_owned());
    Error::new(
        ErrorKind::Forbidden,
        format!(
            "{who} may not access {} in vault {}: no access policy of the vault grants it the \
             secrets {permission} permission ({code})",
            ctx.subject, ctx.vault
        ),
    )
    .with_hint(format!(
        "the vault uses access policies, not Azure RBAC: grant it with az keyvault set-policy \
         --name {name} --object-id {object} --secret-permissions {permission}"
    ))
}

fn forbidden(ctx: &ErrorContext, code: &str) -> Error {
    let who = ctx
        .identity
        .as_ref()
        .map_or_else(|| "the identity in use".to_owned(), Identity::describe);
    let (verb, role) = match ctx.access {
        Access::Read => ("read", "'Key Vault Secrets User' (read)"),
        Access::Write => ("write", "'Key Vault Secrets Officer' (write)"),
    };
    let object = ctx
        .identity
        .as_ref()
        .and_then(|i| i.object_id.clone().or_else(|| i.client_id.clone()))
        .unwrap_or_else(|| "the identity".to_owned());
    Error::new(
        ErrorKind::Forbidden,
        format!(
            "{who} may not {verb} {} in vault {} ({code})",
            ctx.subject, ctx.vault
        ),
    )
    .with_hint(format!(
        "assign the role {role} to {object} on {}, e.g. az role assignment create --role \"{}\" --assignee {object} --scope <vault resource id>",
        ctx.vault,
        if ctx.access == Access::Read { "Key Vault Secrets User" } else { "Key Vault Secrets Officer" }
    ))
}

/// Error codes in a Key Vault error body: `error.code` and every nested `innererror.code`.
fn error_codes(body: &[u8]) -> Vec<String> {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut codes = Vec::new();
    let mut node = json.get("error");
    while let Some(n) = node {
        if let Some(code) = n.get("code").and_then(|c| c.as_str()) {
            codes.push(code.to_owned());
        }
        node = n.get("innererror");
    }
    codes
}

/// Maps an HTTP error answer of the vault to an [`Error`]. Server messages are not copied:
/// only status and error codes, so nothing the request carried can come back in a message.
pub(crate) fn map_http_error(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    ctx: &ErrorContext,
) -> Error {
    let codes = error_codes(body);
    let has = |c: &str| codes.iter().any(|x| x.eq_ignore_ascii_case(c));
    let code = codes
        .last()
        .cloned()
        .unwrap_or_else(|| format!("HTTP {status}"));
    match status {
        401 => Error::new(
            ErrorKind::Unauthenticated,
            format!(
                "vault {} rejected the token of {} ({code})",
                ctx.vault,
                ctx.identity
                    .as_ref()
                    .map_or_else(|| "the identity in use".to_owned(), Identity::describe)
            ),
        )
        .with_hint("check that the identity belongs to the vault's tenant (AZURE_TENANT_ID, `az login --tenant`)"),
        // No arms for expired or not-yet-valid secrets: Key Vault returns them (200), and
        // `check_usable` refuses them.
        403 if has("SecretDisabled") => disabled(ctx),
        // A vault that uses access policies instead of RBAC: "The user, group or application
        // '...' does not have secrets get permission on key vault '...'", innererror
        // `ForbiddenByPolicy` (older answers: `AccessDenied`).
        403 if has("ForbiddenByPolicy") || has("AccessDenied") => {
            denied_by_access_policy(ctx, &code, policy_permission(body))
        }
        // The vault's network rules refused the machine: no role assignment would help.
        403 if has("ForbiddenByFirewall") || has("ForbiddenByConnection") => Error::new(
            ErrorKind::Forbidden,
            format!(
                "vault {} does not accept requests from this machine's network ({code}) for {}",
                ctx.vault, ctx.subject
            ),
        )
        .with_hint(
            "allow this machine in the vault's network rules (az keyvault network-rule add --name <vault name> \
             --ip-address <its public IP>), or run where the vault's private endpoint is reachable",
        ),
        403 => forbidden(ctx, &code),
        404 => not_found(ctx, &ctx.identity),
        400 if has("SecretTooLarge") => Error::new(
            ErrorKind::TooLarge,
            format!(
                "vault {} refused {}: the value is longer than Key Vault stores ({code})",
                ctx.vault, ctx.subject
            ),
        )
        .with_hint("store at most 19,200 bytes (25,600 characters as Base64) per secret"),
        400 if has("BadParameter") => Error::new(
            ErrorKind::Service,
            format!(
                "vault {} refused the request for {} as invalid ({code})",
                ctx.vault, ctx.subject
            ),
        )
        .with_hint(
            "check the ref and version; when storing: at most 19,200 bytes per value, \
             15 tags of at most 512 characters",
        ),
        409 if has("ObjectIsDeletedButRecoverable") => Error::new(
            ErrorKind::Service,
            format!("{} is deleted but recoverable in vault {}", ctx.subject, ctx.vault),
        )
        .with_hint("recover it (az keyvault secret recover) or purge it before storing it again"),
        429 => {
            let asked = retry_after.map_or(String::new(), |d| format!(" and asked to wait {}", secs(d)));
            Error::new(
                ErrorKind::Throttled,
                format!("vault {} is throttling requests (HTTP 429){asked}", ctx.vault),
            )
            .with_hint("try again later, or raise keyvault.timeout above the requested wait")
        }
        500..=599 => Error::new(
            ErrorKind::Service,
            format!("vault {} failed with HTTP {status} ({code}) for {}", ctx.vault, ctx.subject),
        )
        .with_hint("try again later; if it persists, check the vault's health in the Azure portal"),
        _ => Error::new(
            ErrorKind::Service,
            format!(
                "vault {} refused the request for {} with HTTP {status} ({code})",
                ctx.vault, ctx.subject
            ),
        )
        .with_hint("check keyvault.url and the ref; if they are right, please report this as a bug"),
    }
}

/// Maps any SDK error to an [`Error`], looking through the error chain for what the core put
/// there (chain failures, throttling, transport failures) before looking at HTTP answers.
pub(crate) fn map_sdk_error(err: &azure_core::Error, ctx: &ErrorContext) -> Error {
    let mut core: Option<Error> = None;
    let mut transport_failure: Option<TransportFailure> = None;
    let mut http: Option<(u16, Vec<u8>, Option<Duration>)> = None;
    let mut challenge: Option<String> = None;
    transport::walk_errors(err, &mut |e| {
        if let Some(c) = e.downcast_ref::<Error>() {
            core.get_or_insert_with(|| c.clone());
        } else if let Some(c) = e.downcast_ref::<ChainFailure>() {
            core.get_or_insert_with(|| c.0.clone());
        } else if let Some(t) = e.downcast_ref::<TransportFailure>() {
            transport_failure.get_or_insert_with(|| t.clone());
        } else if let Some(a) = e.downcast_ref::<azure_core::Error>() {
            if let azure_core::error::ErrorKind::HttpResponse {
                status,
                raw_response,
                ..
            } = a.kind()
            {
                if http.is_none() {
                    let (body, after) = raw_response.as_ref().map_or((Vec::new(), None), |r| {
                        (r.body().to_vec(), transport::retry_after(r.headers()))
                    });
                    http = Some((u16::from(*status), body, after));
                }
            } else {
                let text = a.to_string();
                if text.contains("challenge resource") && challenge.is_none() {
                    challenge = Some(text);
                }
            }
        }
    });
    if let Some(c) = core {
        return c;
    }
    if let Some(t) = transport_failure {
        return t.into_error();
    }
    if let Some((status, body, after)) = http {
        return map_http_error(status, &body, after, ctx);
    }
    if let Some(text) = challenge {
        let resource = text
            .split('\'')
            .nth(1)
            .map(|s| s.trim_end_matches("/.default").to_owned())
            .unwrap_or_else(|| "another domain".to_owned());
        return Error::new(
            ErrorKind::BadConfig,
            format!(
                "vault {} asked for a token for {resource}, which is not a parent domain of the vault's host, \
                 and challenge resource verification is on",
                ctx.vault
            ),
        )
        .with_hint(
            "for a vault outside *.vault.azure.net (an emulator, a private name) turn the check off \
             (keyvault.verify-challenge-resource = false, VaultConfig.verify_challenge_resource); \
             otherwise check keyvault.url",
        );
    }
    if matches!(err.kind(), azure_core::error::ErrorKind::Credential) {
        return Error::new(
            ErrorKind::Unauthenticated,
            format!(
                "cannot get a token for vault {}: {}",
                ctx.vault,
                crate::credential::sanitize_sdk_message(&err.to_string())
            ),
        )
        .with_hint("run `az login`, or check the credential settings (keyvault.credential)");
    }
    Error::new(
        ErrorKind::Service,
        format!(
            "unexpected failure talking to vault {} about {}: {}",
            ctx.vault,
            ctx.subject,
            crate::credential::sanitize_sdk_message(&err.to_string())
        ),
    )
    .with_hint("try again; if it persists, please report this as a bug")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CredentialChoice;
    use azure_core::time::OffsetDateTime;

    fn ctx(access: Access) -> ErrorContext {
        ErrorContext {
            access,
            vault: "https://contoso.vault.azure.net/".into(),
            subject: "secret secret://hg/ci-bot/password (hg-262b9dc2f9005d92ec832bc94ae27edc)"
                .into(),
            secret_ref: Some("secret://hg/ci-bot/password".into()),
            version: None,
            identity: Some(Identity {
                link: CredentialChoice::Environment,
                link_id: "environment",
                via: "service principal secret (AZURE_CLIENT_SECRET)".into(),
                tenant_id: Some("tid-1".into()),
                client_id: Some("cid-1".into()),
                object_id: Some("oid-1".into()),
            }),
        }
    }

    #[test]
    fn not_found_hints_hg_vault_set() {
        let body = br#"{"error":{"code":"SecretNotFound","message":"A secret with (name/id) x was not found in this key vault."}}"#;
        let e = map_http_error(404, body, None, &ctx(Access::Read));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e
            .message()
            .contains("does not exist in vault https://contoso.vault.azure.net/"));
        assert_eq!(
            e.hint(),
            Some("store it with `hg vault set secret://hg/ci-bot/password`")
        );
    }

    #[test]
    fn forbidden_names_identity_vault_and_role() {
        let body = br#"{"error":{"code":"Forbidden","message":"Caller is not authorized","innererror":{"code":"ForbiddenByRbac"}}}"#;
        let e = map_http_error(403, body, None, &ctx(Access::Read));
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        assert!(
            e.message()
                .contains("client id cid-1 (object id oid-1) via environment"),
            "{}",
            e.message()
        );
        assert!(e.message().contains("https://contoso.vault.azure.net/"));
        assert!(e.message().contains("ForbiddenByRbac"));
        let hint = e.hint().unwrap();
        assert!(hint.starts_with("assign the role 'Key Vault Secrets User' (read) to oid-1 on https://contoso.vault.azure.net/"), "{hint}");
        let e = map_http_error(403, body, None, &ctx(Access::Write));
        assert!(e
            .hint()
            .unwrap()
            .contains("'Key Vault Secrets Officer' (write) to oid-1"));
    }

    #[test]
    fn forbidden_by_the_vaults_network_rules_says_so_instead_of_asking_for_a_role() {
        for code in ["ForbiddenByFirewall", "ForbiddenByConnection"] {
            let body = format!(
                r#"{{"error":{{"code":"Forbidden","message":"Client address is not authorized","innererror":{{"code":"{code}"}}}}}}"#
            );
            let e = map_http_error(403, body.as_bytes(), None, &ctx(Access::Read));
            assert_eq!(e.kind(), ErrorKind::Forbidden);
            assert!(
                e.message().contains("this machine's network"),
                "{}",
                e.message()
            );
            assert!(e.message().contains(code), "{}", e.message());
            let hint = e.hint().unwrap();
            assert!(hint.contains("az keyvault network-rule add"), "{hint}");
            assert!(!hint.contains("role"), "{hint}");
        }
    }

    #[test]
    fn forbidden_with_secret_disabled_maps_to_disabled() {
        let disabled = br#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}"#;
        assert_eq!(
            map_http_error(403, disabled, None, &ctx(Access::Read)).kind(),
            ErrorKind::Disabled
        );
    }

    /// The real body of a vault that uses access policies (message as Microsoft's AKS
    /// troubleshooting page quotes it; inner code `ForbiddenByPolicy`, older `AccessDenied`).
    fn policy_body(permission: &str, inner: &str) -> String {
        format!(
            r#"{{"error":{{"code":"Forbidden","message":"The user, group or application 'appid=cid-1;oid=oid-1;iss=https://sts.windows.net/tid-1/' does not have secrets {permission} permission on key vault 'contoso;location=westeurope'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287","innererror":{{"code":"{inner}"}}}}}}"#
        )
    }

    #[test]
    fn access_policy_vaults_get_the_set_policy_hint_with_the_permission_they_named() {
        for inner in ["ForbiddenByPolicy", "AccessDenied"] {
            let body = policy_body("get", inner);
            let e = map_http_error(403, body.as_bytes(), None, &ctx(Access::Read));
            assert_eq!(e.kind(), ErrorKind::Forbidden);
            assert!(
                e.message().contains("secrets get permission"),
                "{}",
                e.message()
            );
            assert!(e.message().contains(inner), "{}", e.message());
            assert_eq!(
                e.hint().unwrap(),
                "the vault uses access policies, not Azure RBAC: grant it with az keyvault \
                 set-policy --name contoso --object-id oid-1 --secret-permissions get"
            );
            assert!(!e.hint().unwrap().contains("role"));
        }
        let body = policy_body("set", "ForbiddenByPolicy");
        let e = map_http_error(403, body.as_bytes(), None, &ctx(Access::Write));
        assert!(e.hint().unwrap().ends_with("--secret-permissions set"));
        // A permission word the core does not know is not copied; the access decides.
        let body = policy_body("x; rm -rf", "AccessDenied");
        let e = map_http_error(403, body.as_bytes(), None, &ctx(Access::Write));
        assert!(e.hint().unwrap().ends_with("--secret-permissions set"));
        assert!(!format!("{e:?}").contains("rm -rf"));
    }

    #[test]
    fn vault_names_come_from_known_vault_hosts_only() {
        assert_eq!(
            vault_name("https://contoso.vault.azure.net/").as_deref(),
            Some("contoso")
        );
        assert_eq!(
            vault_name("https://x.vault.azure.cn/").as_deref(),
            Some("x")
        );
        assert_eq!(vault_name("https://127.0.0.1:8443/"), None);
    }

    #[test]
    fn a_real_400_says_what_was_refused_instead_of_asking_for_a_bug_report() {
        // The service's answer to a value over 25,600 characters.
        let body = br#"{"error":{"code":"BadParameter","message":"Secret is beyond the maximum permitted length of 25600 characters.","innererror":{"code":"SecretTooLarge"}}}"#;
        let e = map_http_error(400, body, None, &ctx(Access::Write));
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(e.message().contains("SecretTooLarge"), "{}", e.message());
        assert!(e.hint().unwrap().contains("19,200 bytes"));
        let other = br#"{"error":{"code":"BadParameter","message":"whatever"}}"#;
        let e = map_http_error(400, other, None, &ctx(Access::Write));
        assert_eq!(e.kind(), ErrorKind::Service);
        assert!(!e.hint().unwrap().contains("bug"), "{:?}", e.hint());
    }

    #[test]
    fn limits_are_checked_before_sending() {
        let c = ctx(Access::Write);
        let tags = |n: usize, len: usize| -> HashMap<String, String> {
            (0..n).map(|i| (format!("t{i}"), "v".repeat(len))).collect()
        };
        let fits = SecretValue::new(vec![7u8; MAX_VALUE_BYTES]);
        check_limits(&fits, &tags(15, 512), &c).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(fits.expose());
        assert_eq!(encoded.len(), MAX_STORED_VALUE_CHARS);
        let big = SecretValue::new(vec![7u8; MAX_VALUE_BYTES + 1]);
        let e = check_limits(&big, &tags(1, 1), &c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(e.message().contains("19201 bytes"), "{}", e.message());
        assert!(
            e.message().contains("at most 19200 bytes"),
            "{}",
            e.message()
        );
        assert_eq!(
            check_limits(&fits, &tags(16, 1), &c).unwrap_err().kind(),
            ErrorKind::TooLarge
        );
        let e = check_limits(&fits, &tags(1, 513), &c).unwrap_err();
        assert!(e.message().contains("513 characters"), "{}", e.message());
    }

    #[test]
    fn throttling_unauthorized_and_server_errors() {
        let e = map_http_error(429, b"", Some(Duration::from_secs(7)), &ctx(Access::Read));
        assert_eq!(e.kind(), ErrorKind::Throttled);
        assert!(e.message().contains("asked to wait 7 s"));
        assert_eq!(
            map_http_error(401, b"", None, &ctx(Access::Read)).kind(),
            ErrorKind::Unauthenticated
        );
        for s in [500, 502, 503, 504] {
            let e = map_http_error(s, b"not json", None, &ctx(Access::Read));
            assert_eq!(e.kind(), ErrorKind::Service, "{s}");
            assert!(e.message().contains(&format!("HTTP {s}")));
        }
        assert_eq!(
            map_http_error(400, b"{}", None, &ctx(Access::Write)).kind(),
            ErrorKind::Service
        );
    }

    #[test]
    fn server_messages_are_not_copied_into_errors() {
        let body = br#"{"error":{"code":"BadParameter","message":"value c2VjcmV0LWRpc3RpbmN0aXZl is bad"}}"#;
        let e = map_http_error(400, body, None, &ctx(Access::Write));
        assert!(!format!("{e:?}").contains("c2VjcmV0"));
        assert!(e.message().contains("BadParameter"));
    }

    #[test]
    fn values_decode_by_content_type() {
        let c = ctx(Access::Read);
        let v = decode_value(Some("AP8=".into()), Some(CONTENT_TYPE), &c).unwrap();
        assert_eq!(v.expose(), &[0u8, 255]);
        // Secrets created by hand are text.
        let v = decode_value(Some("plain text".into()), None, &c).unwrap();
        assert_eq!(v.expose(), b"plain text");
        let v = decode_value(Some("AP8=".into()), Some("text/plain"), &c).unwrap();
        assert_eq!(v.expose(), b"AP8=");
        let e = decode_value(
            Some("!!not-base64-distinctive".into()),
            Some(CONTENT_TYPE),
            &c,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Service);
        assert!(!format!("{e:?}").contains("distinctive"));
    }

    #[test]
    fn returned_secret_state_is_checked() {
        let c = ctx(Access::Read);
        let mut p = SecretProperties {
            enabled: true,
            ..Default::default()
        };
        check_usable(&p, &c).unwrap();
        p.expires = Some(OffsetDateTime::now_utc() - azure_core::time::Duration::minutes(1));
        let e = check_usable(&p, &c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Expired);
        assert_eq!(e.state(), Some(SecretState::Expired));
        p.expires = None;
        p.not_before = Some(OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1));
        let e = check_usable(&p, &c).unwrap_err();
        assert!(e.message().contains("not valid yet"));
        assert_eq!(e.state(), Some(SecretState::NotYetValid));
        p.not_before = None;
        p.enabled = false;
        assert_eq!(
            check_usable(&p, &c).unwrap_err().kind(),
            ErrorKind::Disabled
        );
    }

    #[test]
    fn ids_split_into_name_and_version() {
        assert_eq!(
            split_id("https://v.vault.azure.net/secrets/n/abc"),
            (Some("n".into()), Some("abc".into()))
        );
        assert_eq!(
            split_id("https://v.vault.azure.net/secrets/n"),
            (Some("n".into()), None)
        );
        assert_eq!(split_id("nonsense"), (None, None));
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

    #[test]
    fn versions_are_validated() {
        assert_eq!(
            check_version(Some("abc123")).unwrap(),
            Some("abc123".into())
        );
        assert_eq!(
            check_version(Some("../x")).unwrap_err().kind(),
            ErrorKind::BadRef
        );
    }
}
