//! The configuration model of a vault store (what `[keyvault]` in an hgrc becomes).

use crate::error::{Error, Result};
use crate::name::NamePrefix;
use std::{fmt, path::PathBuf, str::FromStr, time::Duration};
use url::Url;

/// Default overall deadline of one operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which credential(s) to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CredentialChoice {
    /// The chain: environment -> workload identity -> CI OIDC -> managed identity -> Azure CLI.
    #[default]
    Auto,
    /// Service principal with a secret from `AZURE_TENANT_ID`/`AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`.
    Environment,
    /// Federated token file (`AZURE_FEDERATED_TOKEN_FILE`), as on AKS and in CI with OIDC.
    WorkloadIdentity,
    /// The CI's own OIDC token (GitHub/Forgejo Actions, Azure Pipelines, GitLab/Heptapod id_tokens).
    CiOidc,
    /// Managed identity (App Service/Container Apps, Arc, Cloud Shell/ML endpoints, else IMDS).
    ManagedIdentity,
    /// `az account get-access-token`.
    AzureCli,
}

impl CredentialChoice {
    /// Every choice, in chain order after `auto`.
    pub const ALL: [CredentialChoice; 6] = [
        CredentialChoice::Auto,
        CredentialChoice::Environment,
        CredentialChoice::WorkloadIdentity,
        CredentialChoice::CiOidc,
        CredentialChoice::ManagedIdentity,
        CredentialChoice::AzureCli,
    ];

    /// The config spelling (`auto`, `environment`, `workload-identity`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialChoice::Auto => "auto",
            CredentialChoice::Environment => "environment",
            CredentialChoice::WorkloadIdentity => "workload-identity",
            CredentialChoice::CiOidc => "ci-oidc",
            CredentialChoice::ManagedIdentity => "managed-identity",
            CredentialChoice::AzureCli => "azure-cli",
        }
    }
}

impl FromStr for CredentialChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim();
        CredentialChoice::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                let names: Vec<&str> = CredentialChoice::ALL.iter().map(|c| c.as_str()).collect();
                Error::bad_config(format!(
                    "unknown credential '{}'; choose one of {}",
                    s.escape_debug(),
                    names.join(", ")
                ))
                .with_hint(
                    "set keyvault.credential to auto (the default) or to one of the names above",
                )
            })
    }
}

impl fmt::Display for CredentialChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a [`crate::azure::KeyVaultStore`] needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultConfig {
    /// `https://<vault-host>[:port]/`, normalised to end with `/`.
    pub vault_url: Url,
    /// Which credential(s) to use.
    pub credential: CredentialChoice,
    /// Extra PEM roots trusted in addition to the system roots (private CAs, tests).
    pub extra_roots_pem: Option<PathBuf>,
    /// Require the challenge's resource to be a parent domain of the vault host (SDK default).
    /// Must be `false` for a vault that is not under `*.vault.azure.net` (an emulator on 127.0.0.1).
    pub verify_challenge_resource: bool,
    /// Overall deadline of one operation (token + vault round trips + retries).
    pub timeout: Duration,
    /// Prefix of the Key Vault names of `secret://` refs.
    pub name_prefix: NamePrefix,
    /// Appended to the SDK's User-Agent (e.g. `hg-keyvault/0.1 mercurial/7.2`).
    pub user_agent_suffix: Option<String>,
    /// Share access tokens between this user's processes (kernel keyring, memory only), with
    /// the scope the vault's challenge named, so that a warm process sends one request.
    pub token_cache: bool,
    /// Keep values read from the vault this long in the kernel keyring (off when `None`).
    pub secret_cache_ttl: Option<Duration>,
    /// The environment variable that holds the CI's ID token (GitLab/Heptapod `id_tokens`).
    pub id_token_env: Option<String>,
}

impl VaultConfig {
    /// A config with defaults for `url`, which must be `https://host[:port][/]`.
    pub fn new(url: &str) -> Result<VaultConfig> {
        Ok(VaultConfig {
            vault_url: parse_vault_url(url)?,
            credential: CredentialChoice::Auto,
            extra_roots_pem: None,
            verify_challenge_resource: true,
            timeout: DEFAULT_TIMEOUT,
            name_prefix: NamePrefix::default(),
            user_agent_suffix: None,
            token_cache: true,
            secret_cache_ttl: None,
            id_token_env: None,
        })
    }

    /// Checks the fields that can be set directly.
    pub fn validate(&self) -> Result<()> {
        parse_vault_url(self.vault_url.as_str())?;
        if self.timeout.is_zero() {
            return Err(Error::bad_config("the vault timeout is zero")
                .with_hint("set keyvault.timeout to a number of seconds, e.g. 10"));
        }
        if let Some(suffix) = &self.user_agent_suffix {
            if suffix.chars().any(|c| c.is_control() || !c.is_ascii()) || suffix.len() > 200 {
                return Err(Error::bad_config(
                    "the User-Agent suffix must be printable ASCII of at most 200 characters",
                )
                .with_hint("use something like 'hg-keyvault/0.1 mercurial/7.2'"));
            }
        }
        if let Some(name) = &self.id_token_env {
            let valid = !name.is_empty()
                && name.len() <= 128
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !valid {
                return Err(Error::bad_config(format!(
                    "keyvault.id-token-env '{}' is not an environment variable name",
                    name.escape_debug()
                ))
                .with_hint(
                    "name the variable of the job's id_tokens: entry, e.g. AZURE_ID_TOKEN",
                ));
            }
        }
        if let Some(path) = &self.extra_roots_pem {
            if !path.is_file() {
                return Err(Error::bad_config(format!(
                    "the CA bundle {} does not exist or is not a file",
                    path.display()
                ))
                .with_hint("point it at a PEM file of CA certificates, or unset it to trust only the system roots"));
            }
        }
        Ok(())
    }
}

fn parse_vault_url(text: &str) -> Result<Url> {
    let fail = |why: &str| {
        Error::bad_config(format!(
            "invalid vault URL '{}': {why}",
            text.escape_debug()
        ))
        .with_hint("set keyvault.url to the vault's URI, e.g. https://contoso-hg.vault.azure.net/")
    };
    let mut url = Url::parse(text.trim()).map_err(|e| fail(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(fail("it must use https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(fail("it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(fail("it cannot contain user info"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(fail("it cannot have a query or a fragment"));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(fail(
            "it must not have a path (the vault URI ends after the host)",
        ));
    }
    url.set_path("/");
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn new_sets_defaults_and_normalises_the_url() {
        let c = VaultConfig::new("https://contoso-hg.vault.azure.net").unwrap();
        assert_eq!(c.vault_url.as_str(), "https://contoso-hg.vault.azure.net/");
        assert_eq!(c.credential, CredentialChoice::Auto);
        assert!(c.verify_challenge_resource);
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.name_prefix.as_str(), "hg-");
        assert_eq!(c.user_agent_suffix, None);
        assert_eq!(c.extra_roots_pem, None);
        assert!(c.token_cache);
        assert_eq!(c.secret_cache_ttl, None);
        assert_eq!(c.id_token_env, None);
        c.validate().unwrap();
        let c = VaultConfig::new("https://127.0.0.1:8443/").unwrap();
        assert_eq!(c.vault_url.as_str(), "https://127.0.0.1:8443/");
    }

    #[test]
    fn vault_url_must_be_https_without_path() {
        for (bad, why) in [
            ("http://contoso.vault.azure.net/", "https"),
            ("contoso.vault.azure.net", "relative URL"),
            ("https://contoso.vault.azure.net/secrets/x", "path"),
            ("https://u@contoso.vault.azure.net/", "user info"),
            ("https://contoso.vault.azure.net/?a=b", "query"),
        ] {
            let err = VaultConfig::new(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::BadConfig);
            assert!(err.message().contains(why), "{bad}: {}", err.message());
            assert!(err.hint().unwrap().contains("https://"));
        }
    }

    #[test]
    fn validate_rejects_zero_timeout_and_bad_user_agent() {
        let mut c = VaultConfig::new("https://v.vault.azure.net/").unwrap();
        c.timeout = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().kind(), ErrorKind::BadConfig);
        c.timeout = DEFAULT_TIMEOUT;
        c.user_agent_suffix = Some("a\r\nX-Evil: 1".into());
        assert_eq!(c.validate().unwrap_err().kind(), ErrorKind::BadConfig);
        c.user_agent_suffix = None;
        for bad in ["", "A-B", "1X", "A B"] {
            c.id_token_env = Some(bad.into());
            assert_eq!(
                c.validate().unwrap_err().kind(),
                ErrorKind::BadConfig,
                "{bad}"
            );
        }
        c.id_token_env = Some("AZURE_ID_TOKEN".into());
        c.validate().unwrap();
        c.id_token_env = None;
        c.extra_roots_pem = Some("/nonexistent/ca.pem".into());
        assert!(c
            .validate()
            .unwrap_err()
            .message()
            .contains("/nonexistent/ca.pem"));
    }

    #[test]
    fn credential_choice_parses_every_name() {
        for (text, choice) in [
            ("auto", CredentialChoice::Auto),
            ("environment", CredentialChoice::Environment),
            ("workload-identity", CredentialChoice::WorkloadIdentity),
            ("managed-identity", CredentialChoice::ManagedIdentity),
            ("ci-oidc", CredentialChoice::CiOidc),
            ("azure-cli", CredentialChoice::AzureCli),
            (" Azure-CLI ", CredentialChoice::AzureCli),
        ] {
            assert_eq!(text.parse::<CredentialChoice>().unwrap(), choice);
        }
        for choice in CredentialChoice::ALL {
            assert_eq!(choice.as_str().parse::<CredentialChoice>().unwrap(), choice);
            assert_eq!(choice.to_string(), choice.as_str());
        }
        assert_eq!(CredentialChoice::default(), CredentialChoice::Auto);
    }

    #[test]
    fn unknown_credential_choice_names_the_choices() {
        let err = "az".parse::<CredentialChoice>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadConfig);
        assert_eq!(
            err.message(),
            "unknown credential 'az'; choose one of auto, environment, workload-identity, ci-oidc, managed-identity, azure-cli"
        );
    }
}
