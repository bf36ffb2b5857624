//! The blocking AWS store: a current-thread runtime (`crate::blocking::io_runtime`) plus the
//! async [`AwsStore`], rebuilt after a fork (chg) like the Key Vault session: the SDK clients,
//! their connection pool and the runtime live in a [`ForkLocal`], and the environment
//! (credentials, region, endpoints) is read again in a forked child.

use super::credential_cache::{CacheInputs, CachedChain};
use super::http_client::{InFlight, ReqwestHttpClient};
use super::identity::{Chain, ProfileFacts, SourceKind};
use super::names::AwsPrefix;
use super::region::RegionSources;
use super::store::AwsStore;
use crate::error::Result;
use crate::fork_local::{ForkLocal, ForkLocalGuard};
use crate::secret::SecretValue;
use crate::secret_cache::{SecretCache, SelectedLink};
use crate::secret_ref::SecretRef;
use crate::store::{
    CacheStatus, Deleted, Provider, Secret, SecretProperties, SecretStore, SetOptions,
    StoreIdentity, StoreInfo, ValueSource,
};
use crate::transport::{StoreClients, Trust};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Attempts of one SDK call (the first included) on throttling, 5xx and transient errors.
const MAX_ATTEMPTS: u32 = 3;

/// What `[keyvault]` says about the AWS store.
#[derive(Clone, Debug)]
pub struct AwsConfig {
    /// `keyvault.aws-region`.
    pub region: Option<String>,
    /// `keyvault.aws-profile` (else `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// `keyvault.cacerts`: extra PEM roots (with `AWS_CA_BUNDLE`'s).
    pub cacerts: Option<PathBuf>,
    /// `keyvault.timeout`: each operation as a whole.
    pub timeout: Duration,
    /// `keyvault.name-prefix`.
    pub name_prefix: String,
    /// `keyvault.token-cache`: share temporary credentials between processes.
    pub token_cache: bool,
    /// `keyvault.secret-cache`.
    pub secret_cache_ttl: Option<Duration>,
    /// Appended to the User-Agent (the SDK's app name field).
    pub user_agent: Option<String>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: None,
            profile: None,
            cacerts: None,
            timeout: crate::config::DEFAULT_TIMEOUT,
            name_prefix: crate::name::DEFAULT_PREFIX.to_owned(),
            token_cache: true,
            secret_cache_ttl: None,
            user_agent: None,
        }
    }
}

struct Live {
    runtime: tokio::runtime::Runtime,
    store: AwsStore,
    secrets: Option<SecretCache>,
    profile: ProfileFacts,
}

/// A synchronous Secrets Manager store.
pub struct AwsSession {
    config: AwsConfig,
    prefix: AwsPrefix,
    live: ForkLocal<Live>,
}

impl std::fmt::Debug for AwsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSession")
            .field("region", &self.config.region)
            .field("profile", &self.config.profile)
            .finish_non_exhaustive()
    }
}

impl SelectedLink for CachedChain {
    fn selected_link_id(&self) -> Option<&'static str> {
        self.selected_seal_id()
    }
}

impl AwsSession {
    /// A session for `config` (credentials, region and endpoints from the process environment).
    pub fn new(config: &AwsConfig) -> Result<Self> {
        let session = Self {
            prefix: AwsPrefix::parse(&config.name_prefix)?,
            config: config.clone(),
            live: ForkLocal::new(),
        };
        // Fail early on configuration errors (CA bundles).
        drop(session.live()?);
        Ok(session)
    }

    fn live(&self) -> Result<ForkLocalGuard<'_, Live>> {
        self.live.get_or_try_init(|| self.make_live())
    }

    fn make_live(&self) -> Result<Live> {
        let runtime = crate::blocking::io_runtime()?;
        let live = runtime.block_on(self.build())?;
        Ok(Live {
            runtime,
            store: live.0,
            secrets: live.1,
            profile: live.2,
        })
    }

    async fn build(&self) -> Result<(AwsStore, Option<SecretCache>, ProfileFacts)> {
        use aws_config::provider_config::ProviderConfig;
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        use aws_smithy_async::rt::sleep::TokioSleep;

        let timeout = self.config.timeout;
        let connect = timeout.min(crate::transport::MAX_CONNECT_TIMEOUT);
        let ca_bundle = std::env::var_os("AWS_CA_BUNDLE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let roots: Vec<&std::path::Path> = self
            .config
            .cacerts
            .iter()
            .chain(ca_bundle.iter())
            .map(PathBuf::as_path)
            .collect();
        let clients = StoreClients::new(Trust::load(&roots)?, connect)?;
        let in_flight: InFlight = Arc::new(Mutex::new(None));
        let http = ReqwestHttpClient::new(clients.proxied, connect, in_flight.clone());
        // The container endpoint and IMDS are asked directly, never through HTTP_PROXY or
        // ALL_PROXY (their token and the keys they return travel in plain http); STS and
        // Secrets Manager keep the environment's proxy.
        let direct = ReqwestHttpClient::new(clients.direct, connect, in_flight.clone());

        let profile = ProfileFacts::load(self.config.profile.as_deref()).await;
        let regions =
            RegionSources::from_env(self.config.region.as_deref(), profile.region.as_deref());
        // STS (web identity) needs a region even when every ref is an ARN.
        let sts_region = regions.default_region().unwrap_or("us-east-1").to_owned();
        let retry = RetryConfig::standard()
            .with_max_attempts(MAX_ATTEMPTS)
            .with_initial_backoff(Duration::from_millis(200))
            .with_max_backoff(Duration::from_secs(2));
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(connect)
            .read_timeout(timeout)
            .operation_timeout(timeout)
            .operation_attempt_timeout(timeout)
            .build();
        let provider_config = ProviderConfig::default()
            .with_http_client(http.clone())
            .with_sleep_impl(TokioSleep::new())
            .with_region(Some(aws_config::Region::new(sts_region.clone())))
            .with_retry_config(retry.clone())
            .with_timeout_config(timeouts.clone());
        let local_config = provider_config.clone().with_http_client(direct);
        let chain = Arc::new(Chain::standard(&provider_config, &local_config, &profile));
        let inputs = CacheInputs::from_env(&profile, &sts_region);
        let credentials = Arc::new(CachedChain::new(
            chain,
            &inputs,
            self.config.token_cache,
            timeout,
        ));

        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .sleep_impl(aws_smithy_async::rt::sleep::SharedAsyncSleep::new(
                TokioSleep::new(),
            ))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(ArcProvider(
                    credentials.clone(),
                )),
            )
            .identity_cache(
                aws_config::identity::IdentityCache::lazy()
                    .load_timeout(timeout)
                    .build(),
            )
            .region(aws_config::Region::new(sts_region))
            .retry_config(retry)
            .timeout_config(timeouts)
            .profile_name(&profile.name);
        if let Some(ua) = &self.config.user_agent {
            if let Ok(app) = aws_config::AppName::new(app_name(ua)) {
                loader = loader.app_name(app);
            }
        }
        let sdk = loader.load().await;
        let secrets = SecretCache::open(
            self.config.secret_cache_ttl,
            credentials.key(),
            CachedChain::seal_for_secrets(&inputs),
            credentials.clone(),
        );
        let store = AwsStore {
            sdk,
            regions,
            prefix: self.prefix.clone(),
            timeout,
            credentials,
            in_flight,
            clients: Mutex::new(Default::default()),
        };
        Ok((store, secrets, profile))
    }

    /// The pid the runtime and clients were built in (tests of the fork handling).
    pub fn built_in_pid(&self) -> Option<u32> {
        self.live.built_in_pid()
    }

    fn region_text(&self) -> String {
        self.live()
            .ok()
            .and_then(|l| l.store.regions.default_region().map(str::to_owned))
            .unwrap_or_else(|| "(none: ARN refs only)".to_owned())
    }
}

/// The SDK's app name allows `[A-Za-z0-9!#$%&'*+\-.^_`|~]` (no spaces, no '/'): our suffix
/// (`hg-keyvault/0.1 mercurial/7.2 ...`) with everything else turned into '_'.
fn app_name(ua: &str) -> String {
    ua.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(50)
        .collect()
}

/// `Arc<CachedChain>` as the SDK's provider.
#[derive(Debug)]
struct ArcProvider(Arc<CachedChain>);

impl aws_credential_types::provider::ProvideCredentials for ArcProvider {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.0.provide_credentials()
    }
}

macro_rules! run {
    ($session:expr, $method:ident($($arg:expr),*)) => {{
        let live = $session.live()?;
        live.runtime.block_on(live.store.$method($($arg),*))
    }};
}

impl SecretStore for AwsSession {
    fn provider(&self) -> Provider {
        Provider::Aws
    }

    fn info(&self) -> StoreInfo {
        StoreInfo {
            provider: Provider::Aws,
            location: self.region_text(),
            detail: self.live().ok().and_then(|l| {
                let region = l.store.regions.default_region()?.to_owned();
                let endpoint = l.store.endpoint(&region);
                Some(endpoint)
            }),
            label: "region",
            location_key: "region",
            credential: Some("auto"),
        }
    }

    fn name_of(&self, secret_ref: &SecretRef) -> Result<String> {
        match secret_ref.arn() {
            // The name inside the ARN (as ListSecrets reports it, with AWS's suffix if given).
            Some(arn) => Ok(arn.name().to_owned()),
            None => super::names::secret_id(secret_ref, &self.prefix),
        }
    }

    fn get(&self, secret_ref: &SecretRef, version: Option<&str>) -> Result<Secret> {
        run!(self, get(secret_ref, version))
    }

    fn set(
        &self,
        secret_ref: &SecretRef,
        value: &SecretValue,
        options: SetOptions,
    ) -> Result<SecretProperties> {
        let out = run!(self, set(secret_ref, value, options));
        // Also when tagging failed after the value was stored: the cached value is stale then.
        self.forget_cached(secret_ref)?;
        out
    }

    fn properties(&self, secret_ref: &SecretRef) -> Result<SecretProperties> {
        run!(self, properties(secret_ref))
    }

    fn versions(&self, secret_ref: &SecretRef) -> Result<Vec<SecretProperties>> {
        run!(self, versions(secret_ref))
    }

    fn list(&self) -> Result<Vec<SecretProperties>> {
        run!(self, list())
    }

    fn delete(&self, secret_ref: &SecretRef) -> Result<Deleted> {
        let out = run!(self, delete(secret_ref))?;
        self.forget_cached(secret_ref)?;
        Ok(out)
    }

    fn ping(&self) -> Result<()> {
        run!(self, ping())
    }

    fn read(&self, secret_ref: &SecretRef, version: Option<&str>) -> Result<(Secret, ValueSource)> {
        let live = self.live()?;
        let Some(cache) = &live.secrets else {
            drop(live);
            return Ok((self.get(secret_ref, version)?, ValueSource::Vault));
        };
        let name = super::names::secret_id(secret_ref, &self.prefix)?;
        if let Some(hit) = cache.get(&name, version) {
            return Ok((hit.secret, ValueSource::SecretCache(hit.remaining)));
        }
        let secret = live.runtime.block_on(live.store.get(secret_ref, version))?;
        cache.put(&name, version, &secret);
        Ok((secret, ValueSource::Vault))
    }

    fn cache_status(&self) -> Result<Option<CacheStatus>> {
        let live = self.live()?;
        Ok(Some(CacheStatus {
            token_store: Some(live.store.credentials.store()),
            token_source: live.store.credentials.last_source(),
            secret_cache_ttl: live.secrets.as_ref().map(SecretCache::ttl),
            secret_cache_unavailable: live.secrets.is_none()
                && self
                    .config
                    .secret_cache_ttl
                    .is_some_and(|t| t.as_secs() > 0),
        }))
    }

    fn cached_for(&self, secret_ref: &SecretRef) -> Result<Option<Duration>> {
        let live = self.live()?;
        let (Some(cache), Ok(name)) = (
            &live.secrets,
            super::names::secret_id(secret_ref, &self.prefix),
        ) else {
            return Ok(None);
        };
        Ok(cache.get(&name, None).map(|h| h.remaining))
    }

    fn forget_cached(&self, secret_ref: &SecretRef) -> Result<()> {
        let live = self.live()?;
        if let (Some(cache), Ok(name)) = (
            &live.secrets,
            super::names::secret_id(secret_ref, &self.prefix),
        ) {
            cache.forget(&name, None);
        }
        Ok(())
    }

    fn identity(&self) -> Result<Option<StoreIdentity>> {
        let live = self.live()?;
        let (arn, account, user_id) = live.runtime.block_on(live.store.caller())?;
        let answered = live.store.credentials.chain().answered();
        let (link_id, via, from_profile) = match answered {
            Some(a) => (a.kind.as_str(), a.label, a.kind == SourceKind::Profile),
            None => ("unknown", "unknown".to_owned(), false),
        };
        let mut ids = vec![
            ("caller_arn", Some(arn)),
            ("account", Some(account)),
            ("user_id", Some(user_id)),
        ];
        // The profile's name only when the profile answered: with environment keys or a role
        // the default profile played no part, and naming it would mislead.
        if from_profile {
            ids.push(("profile", Some(live.profile.name.clone())));
        }
        Ok(Some(StoreIdentity {
            credential: "auto",
            link_id,
            via,
            ids,
        }))
    }

    fn selected_link(&self) -> Option<&'static str> {
        let live = self.live.peek()?;
        live.store
            .credentials
            .chain()
            .answered()
            .map(|a| a.kind.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reads_the_roots_once_and_builds_the_host_local_client_only_when_asked() {
        // The chain holds the container and IMDS providers (on the proxy-free client) whatever
        // the environment; building the session sends nothing and must not build that client.
        let cost = crate::azure::tests::setup_cost(|| {
            AwsSession::new(&AwsConfig {
                region: Some("eu-west-1".to_owned()),
                ..AwsConfig::default()
            })
            .unwrap();
        });
        assert_eq!(cost, (1, 1), "(root loads, clients built)");
    }
}
