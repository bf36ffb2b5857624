//! `az account get-access-token`, with the `az` found on the snapshot's `PATH`.

use crate::config::CredentialChoice;
use crate::credential::env::CredentialEnv;
use crate::credential::link::{digest, Link, LinkPlan, Ready};
use crate::credential::sdk_message::sanitize_sdk_message;
use async_trait::async_trait;
use azure_core::{credentials::TokenCredential, http::ClientOptions};
use azure_identity::{AzureCliCredential, AzureCliCredentialOptions, Executor};
use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    sync::Arc,
};

pub(crate) struct AzureCli;

impl Link for AzureCli {
    fn id(&self) -> &'static str {
        "azure-cli"
    }

    fn group(&self) -> CredentialChoice {
        CredentialChoice::AzureCli
    }

    fn plan(&self, env: &CredentialEnv, _pinned: bool) -> LinkPlan {
        match find_on_path("az", env.get("PATH")) {
            Some(az) => LinkPlan::Use(format!("Azure CLI ({})", az.display())),
            None => LinkPlan::Skip("az is not on PATH".to_owned()),
        }
    }

    fn cache_key(&self, env: &CredentialEnv, line: &mut dyn FnMut(&str, &str)) {
        let az = find_on_path("az", env.get("PATH")).unwrap_or_default();
        line("az", &az.display().to_string());
        // `az login` / `az account set` rewrite the profile: a new user, a new key.
        let profile = std::fs::read(azure_profile_path(env)).unwrap_or_default();
        line("profile", &digest(&profile));
    }

    fn build(&self, env: &CredentialEnv, _options: &ClientOptions) -> Ready {
        let az = find_on_path("az", env.get("PATH")).unwrap_or_default();
        let dir = az.parent().map(Path::to_path_buf).unwrap_or_default();
        let path = env.get("PATH").unwrap_or_default().to_owned();
        match AzureCliCredential::new(Some(AzureCliCredentialOptions {
            executor: Some(Arc::new(PathExecutor { path, az_dir: dir })),
            ..Default::default()
        })) {
            Ok(c) => Ready::Credential(c as Arc<dyn TokenCredential>),
            Err(e) => Ready::Broken(sanitize_sdk_message(&e.to_string())),
        }
    }

    fn hint(&self) -> &'static str {
        "install the Azure CLI and run `az login`"
    }
}

fn azure_profile_path(env: &CredentialEnv) -> PathBuf {
    let dir = match env.get("AZURE_CONFIG_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env.get("HOME").unwrap_or("/nonexistent")).join(".azure"),
    };
    dir.join("azureProfile.json")
}

pub(crate) fn find_on_path(program: &str, path: Option<&str>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// Runs the SDK's `/bin/sh -c "cd /bin && az ..."` with the chain's PATH (not the process's)
/// and without our secrets in the child's environment; the child dies with the operation.
#[derive(Debug)]
struct PathExecutor {
    path: String,
    az_dir: PathBuf,
}

/// Variables of ours that `az` never needs and must not inherit.
const NOT_FOR_AZ: &[&str] = &[
    "AZURE_CLIENT_SECRET",
    "IDENTITY_HEADER",
    "MSI_SECRET",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "SYSTEM_ACCESSTOKEN",
];

#[async_trait]
impl Executor for PathExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> std::io::Result<std::process::Output> {
        let mut path = self.path.clone();
        if path.is_empty() {
            path = self.az_dir.display().to_string();
        }
        let mut command = tokio::process::Command::new(program);
        command.args(args).env("PATH", path);
        for name in NOT_FOR_AZ {
            command.env_remove(name);
        }
        command
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
    }
}
