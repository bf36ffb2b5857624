//! What the chain decides from: a snapshot of the environment variables it reads and of the
//! one piece of local evidence it looks at (the SMBIOS chassis asset tag), taken once, so that
//! planning is a pure function of the snapshot and tests do not race on `setenv`.

use crate::error::{Error, Result};
use std::{collections::BTreeMap, fmt};

/// Environment variables the chain reads (besides the one `keyvault.id-token-env` names).
pub const ENV_NAMES: &[&str] = &[
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    // Managed identity endpoints: App Service / Container Apps, Arc, Service Fabric, Cloud
    // Shell and Azure Machine Learning.
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IMDS_ENDPOINT",
    "IDENTITY_SERVER_THUMBPRINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    // GitHub, Forgejo and Gitea Actions' OIDC token endpoint.
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "FORGEJO_ACTIONS",
    "GITEA_ACTIONS",
    // Azure Pipelines: its OIDC endpoint, the job's access token, and the service connection
    // the AzureCLI@2 / AzurePowerShell@5 tasks describe.
    "SYSTEM_OIDCREQUESTURI",
    "SYSTEM_ACCESSTOKEN",
    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
    "AZURESUBSCRIPTION_CLIENT_ID",
    "AZURESUBSCRIPTION_TENANT_ID",
    // GitLab: tells Heptapod from GitLab in messages.
    "CI_SERVER_NAME",
    "PATH",
    // Where `az` keeps its profile: the token cache key changes when `az login` changes it.
    "AZURE_CONFIG_DIR",
    "HOME",
];

/// Values never shown, not even in `Debug`.
const SENSITIVE_ENV: &[&str] = &[
    "AZURE_CLIENT_SECRET",
    "IDENTITY_HEADER",
    "MSI_SECRET",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "SYSTEM_ACCESSTOKEN",
];

/// The chassis asset tag every Azure VM carries in its SMBIOS tables (Hyper-V on Azure sets it;
/// the Azure SDKs and cloud-init detect Azure by it). Reading it sends no packet.
pub const AZURE_CHASSIS_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

/// Where Linux shows the SMBIOS chassis asset tag. Fixed: no variable or setting moves it (a
/// knob here would let an environment make `auto` talk to 169.254.169.254); tests put their
/// own file there inside a mount namespace.
#[cfg(target_os = "linux")]
const CHASSIS_ASSET_TAG_PATH: &str = "/sys/class/dmi/id/chassis_asset_tag";

const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";

/// A snapshot of the chain's inputs. Empty values count as unset.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CredentialEnv {
    vars: BTreeMap<String, String>,
    chassis_asset_tag: Option<String>,
    id_token_variable: Option<String>,
}

impl CredentialEnv {
    /// The current process's values of [`ENV_NAMES`] and the machine's chassis asset tag.
    pub fn from_process() -> Self {
        let mut env = Self::from_pairs(
            ENV_NAMES
                .iter()
                .filter_map(|name| std::env::var(name).ok().map(|v| (*name, v))),
        );
        env.chassis_asset_tag = read_chassis_asset_tag();
        env
    }

    /// Like [`Self::from_process`], plus the variable that `keyvault.id-token-env` names.
    pub fn from_process_with_id_token(variable: Option<&str>) -> Self {
        let mut env = Self::from_process();
        if let Some(name) = variable.filter(|n| !n.is_empty()) {
            if let Ok(value) = std::env::var(name) {
                env.set(name, value);
            }
            env.id_token_variable = Some(name.to_owned());
        }
        env
    }

    /// From explicit pairs (tests, or a caller that sanitised its environment); no asset tag.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ..Self::default()
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

    /// Records the SMBIOS chassis asset tag (tests; [`Self::from_process`] reads the machine's).
    pub fn set_chassis_asset_tag(&mut self, tag: Option<&str>) {
        self.chassis_asset_tag = tag.map(str::to_owned);
    }

    /// The SMBIOS chassis asset tag, if the machine has one.
    pub fn chassis_asset_tag(&self) -> Option<&str> {
        self.chassis_asset_tag.as_deref()
    }

    /// True when the SMBIOS tables say this is an Azure VM.
    pub fn is_azure_vm(&self) -> bool {
        self.chassis_asset_tag() == Some(AZURE_CHASSIS_ASSET_TAG)
    }

    /// Names the variable that holds a CI ID token (`keyvault.id-token-env`); its value must be
    /// in the snapshot too.
    pub fn set_id_token_variable(&mut self, name: Option<&str>) {
        self.id_token_variable = name.filter(|n| !n.is_empty()).map(str::to_owned);
    }

    /// The variable `keyvault.id-token-env` names, if set.
    pub fn id_token_variable(&self) -> Option<&str> {
        self.id_token_variable.as_deref()
    }

    /// Which of `names` are unset.
    pub(crate) fn missing<'a>(&self, names: &[&'a str]) -> Vec<&'a str> {
        names
            .iter()
            .copied()
            .filter(|n| self.get(n).is_none())
            .collect()
    }

    fn is_sensitive(&self, name: &str) -> bool {
        SENSITIVE_ENV.contains(&name) || self.id_token_variable() == Some(name)
    }
}

impl fmt::Debug for CredentialEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.vars {
            if self.is_sensitive(k) {
                m.entry(k, &"****");
            } else {
                m.entry(k, v);
            }
        }
        m.entry(&"<chassis asset tag>", &self.chassis_asset_tag);
        m.finish()
    }
}

#[cfg(target_os = "linux")]
fn read_chassis_asset_tag() -> Option<String> {
    // sysfs files are small; a missing file (containers, other hypervisors) means no tag.
    let text = std::fs::read_to_string(CHASSIS_ASSET_TAG_PATH).ok()?;
    let tag = text.trim();
    (!tag.is_empty() && tag.len() <= 64).then(|| tag.to_owned())
}

#[cfg(not(target_os = "linux"))]
fn read_chassis_asset_tag() -> Option<String> {
    // Windows and macOS keep SMBIOS elsewhere; without evidence `auto` does not use IMDS there.
    None
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn env(pairs: &[(&str, &str)]) -> CredentialEnv {
        CredentialEnv::from_pairs(pairs.iter().copied())
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
    fn env_debug_hides_secrets_and_the_id_token() {
        let mut e = env(&[
            ("AZURE_CLIENT_SECRET", "hunter2-distinctive"),
            ("IDENTITY_HEADER", "hdr-distinctive"),
            ("MSI_SECRET", "msi-distinctive"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gh-distinctive"),
            ("SYSTEM_ACCESSTOKEN", "ado-distinctive"),
            ("MY_ID_TOKEN", "jwt-distinctive"),
        ]);
        e.set_id_token_variable(Some("MY_ID_TOKEN"));
        let d = format!("{e:?}");
        assert!(!d.contains("distinctive"), "{d}");
        assert!(d.contains("MY_ID_TOKEN"), "{d}");
    }

    #[test]
    fn only_the_exact_azure_asset_tag_means_an_azure_vm() {
        let mut e = CredentialEnv::default();
        assert!(!e.is_azure_vm());
        e.set_chassis_asset_tag(Some("No Asset Tag"));
        assert!(!e.is_azure_vm());
        e.set_chassis_asset_tag(Some(AZURE_CHASSIS_ASSET_TAG));
        assert!(e.is_azure_vm());
    }
}
