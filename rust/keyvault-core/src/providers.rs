//! The provider table: each provider's name, the configuration it cannot do without, and how
//! to open its store. The bindings open every store through [`open_store`] and then talk only to
//! the [`SecretStore`] trait, so a new provider is one module implementing that trait plus one
//! row in [`PROVIDERS`] (see `docs/core.md`).

use crate::error::{Error, Result};
use crate::keyring::{KeyringBackend, KeyringConfig, KeyringStore};
use crate::name::NamePrefix;
use crate::store::{Provider, SecretStore};
use std::path::PathBuf;
use std::time::Duration;

/// The `[keyvault]` options as one bag, as the configuration spells them; each provider takes
/// what it uses and parses it itself (so its errors name its own keys).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// `keyvault.url` (Key Vault).
    pub url: Option<String>,
    /// `keyvault.credential` (Key Vault).
    pub credential: String,
    /// `keyvault.cacerts`: extra PEM roots.
    pub cacerts: Option<PathBuf>,
    /// `keyvault.verify-challenge-resource` (Key Vault).
    pub verify_challenge_resource: bool,
    /// `keyvault.timeout`.
    pub timeout: Duration,
    /// `keyvault.name-prefix`.
    pub name_prefix: String,
    /// Appended to the User-Agent of requests (ties service logs to the hg command).
    pub user_agent: Option<String>,
    /// `keyvault.token-cache`.
    pub token_cache: bool,
    /// `keyvault.secret-cache`: None when off.
    pub secret_cache_ttl: Option<Duration>,
    /// `keyvault.id-token-env`.
    pub id_token_env: Option<String>,
    /// `keyvault.keyring` (the keyring provider).
    pub keyring: String,
    /// `keyvault.aws-region` (AWS).
    pub aws_region: Option<String>,
    /// `keyvault.aws-profile` (AWS).
    pub aws_profile: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            url: None,
            credential: "auto".to_owned(),
            cacerts: None,
            verify_challenge_resource: true,
            timeout: Duration::from_secs(10),
            name_prefix: "hg-".to_owned(),
            user_agent: None,
            token_cache: true,
            secret_cache_ttl: None,
            id_token_env: None,
            keyring: "auto".to_owned(),
            aws_region: None,
            aws_profile: None,
        }
    }
}

/// A `[keyvault]` key a provider cannot do without.
#[derive(Clone, Copy, Debug)]
pub struct ConfigNeed {
    /// The key, as the options spell it (`url`).
    pub key: &'static str,
    /// Whether `options` set it.
    pub is_set: fn(&StoreOptions) -> bool,
    /// The error when it is missing: one sentence naming the key, and a hint.
    pub missing: fn() -> Error,
}

/// One row of the provider table.
#[derive(Clone, Copy, Debug)]
pub struct ProviderEntry {
    /// The provider (its config spelling is `provider.as_str()`).
    pub provider: Provider,
    /// Options that must be set (checked by [`open_store`] before `open`).
    pub needs: &'static [ConfigNeed],
    /// Builds the store; fails early on configuration errors.
    pub open: fn(&StoreOptions) -> Result<Box<dyn SecretStore>>,
}

/// Every provider this build knows, in the order `keyvault.provider` lists them.
pub const PROVIDERS: &[ProviderEntry] = &[
    #[cfg(feature = "azure")]
    ProviderEntry {
        provider: Provider::Azure,
        needs: &[ConfigNeed {
            key: "url",
            is_set: |o| o.url.is_some(),
            missing: azure_url_missing,
        }],
        open: open_azure,
    },
    ProviderEntry {
        provider: Provider::Keyring,
        needs: &[],
        open: open_keyring,
    },
    #[cfg(feature = "aws")]
    ProviderEntry {
        provider: Provider::Aws,
        // The region may come from the environment, the profile or each ref's ARN.
        needs: &[],
        open: open_aws,
    },
];

/// The row of `name`, if this build has that provider.
pub fn provider(name: &str) -> Option<&'static ProviderEntry> {
    PROVIDERS.iter().find(|p| p.provider.as_str() == name)
}

/// The row of `name`, or the error naming the providers this build has.
pub fn entry(name: &str) -> Result<&'static ProviderEntry> {
    provider(name).ok_or_else(|| {
        let known: Vec<&str> = PROVIDERS.iter().map(|p| p.provider.as_str()).collect();
        Error::bad_config(format!("keyvault.provider: unknown provider '{name}'"))
            .with_hint(format!("use one of: {}", known.join(", ")))
    })
}

/// Fails with the first of `name`'s needs that `is_set` says is missing.
pub fn check_needs(name: &str, is_set: impl Fn(&str) -> bool) -> Result<()> {
    match entry(name)?.needs.iter().find(|need| !is_set(need.key)) {
        Some(need) => Err((need.missing)()),
        None => Ok(()),
    }
}

/// Opens the store of provider `name` with `options`.
pub fn open_store(name: &str, options: &StoreOptions) -> Result<Box<dyn SecretStore>> {
    let entry = entry(name)?;
    if let Some(need) = entry.needs.iter().find(|need| !(need.is_set)(options)) {
        return Err((need.missing)());
    }
    (entry.open)(options)
}

#[cfg(feature = "azure")]
fn azure_url_missing() -> Error {
    Error::bad_config("keyvault.url is not set")
        .with_hint("set [keyvault] url = https://<your-vault>.vault.azure.net/")
}

#[cfg(feature = "azure")]
fn open_azure(options: &StoreOptions) -> Result<Box<dyn SecretStore>> {
    use crate::config::{CredentialChoice, VaultConfig};
    let url = options.url.as_deref().unwrap_or_default();
    let mut config = VaultConfig::new(url)?;
    config.credential = options.credential.parse::<CredentialChoice>()?;
    config.extra_roots_pem = options.cacerts.clone();
    config.verify_challenge_resource = options.verify_challenge_resource;
    config.timeout = options.timeout;
    config.name_prefix = NamePrefix::parse(&options.name_prefix)?;
    config.user_agent_suffix = options.user_agent.clone();
    config.token_cache = options.token_cache;
    config.id_token_env = options.id_token_env.clone();
    config.secret_cache_ttl = options.secret_cache_ttl;
    // Boxed: a Session is large, and a store is built once per process.
    Ok(Box::new(crate::blocking::Session::new(&config)?))
}

#[cfg(feature = "aws")]
fn open_aws(options: &StoreOptions) -> Result<Box<dyn SecretStore>> {
    let config = crate::aws::AwsConfig {
        region: options.aws_region.clone().filter(|r| !r.is_empty()),
        profile: options.aws_profile.clone().filter(|p| !p.is_empty()),
        cacerts: options.cacerts.clone(),
        timeout: options.timeout,
        name_prefix: options.name_prefix.clone(),
        token_cache: options.token_cache,
        secret_cache_ttl: options.secret_cache_ttl,
        user_agent: options.user_agent.clone(),
    };
    Ok(Box::new(crate::aws::AwsSession::new(&config)?))
}

fn open_keyring(options: &StoreOptions) -> Result<Box<dyn SecretStore>> {
    let config = KeyringConfig {
        backend: options.keyring.parse::<KeyringBackend>()?,
        timeout: options.timeout,
        name_prefix: NamePrefix::parse(&options.name_prefix)?,
    };
    Ok(Box::new(KeyringStore::new(&config)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn every_provider_is_in_the_table_once() {
        let names: Vec<&str> = PROVIDERS.iter().map(|p| p.provider.as_str()).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names, unique);
        assert!(provider("keyring").is_some());
        #[cfg(feature = "azure")]
        assert!(provider("azure").is_some());
        #[cfg(feature = "aws")]
        assert!(provider("aws").is_some());
    }

    #[test]
    fn unknown_provider_is_a_config_error_listing_the_known_ones() {
        let err = open_store("gnome", &StoreOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadConfig);
        assert!(err.hint().unwrap_or_default().contains("keyring"));
    }

    #[cfg(feature = "azure")]
    #[test]
    fn a_missing_need_is_named_with_its_hint_before_opening() {
        let err = open_store("azure", &StoreOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadConfig);
        assert_eq!(err.message(), "keyvault.url is not set");
        assert!(err.hint().unwrap_or_default().contains("vault.azure.net"));
        let err = check_needs("azure", |key| key != "url").unwrap_err();
        assert_eq!(err.message(), "keyvault.url is not set");
        assert!(check_needs("azure", |_| true).is_ok());
        assert!(check_needs("keyring", |_| false).is_ok());
    }
}
