//! A federated token file (`AZURE_FEDERATED_TOKEN_FILE`), as AKS workload identity writes it.

use crate::config::CredentialChoice;
use crate::credential::env::CredentialEnv;
use crate::credential::link::{not_set, Link, LinkPlan, Ready};
use crate::credential::sdk_message::sanitize_sdk_message;
use azure_core::{credentials::TokenCredential, http::ClientOptions};
use azure_identity::{
    ClientAssertionCredentialOptions, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use std::{path::PathBuf, sync::Arc};

pub(crate) struct WorkloadIdentity;

const NEEDS: [&str; 3] = [
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
];

impl Link for WorkloadIdentity {
    fn id(&self) -> &'static str {
        "workload-identity"
    }

    fn group(&self) -> CredentialChoice {
        CredentialChoice::WorkloadIdentity
    }

    fn plan(&self, env: &CredentialEnv, _pinned: bool) -> LinkPlan {
        let missing = env.missing(&NEEDS);
        if missing.is_empty() {
            LinkPlan::Use("workload identity (AZURE_FEDERATED_TOKEN_FILE)".to_owned())
        } else {
            LinkPlan::Skip(not_set(&missing))
        }
    }

    fn cache_key(&self, env: &CredentialEnv, line: &mut dyn FnMut(&str, &str)) {
        line("tenant", env.get("AZURE_TENANT_ID").unwrap_or_default());
        line("client", env.get("AZURE_CLIENT_ID").unwrap_or_default());
        line(
            "token-file",
            env.get("AZURE_FEDERATED_TOKEN_FILE").unwrap_or_default(),
        );
    }

    fn build(&self, env: &CredentialEnv, options: &ClientOptions) -> Ready {
        let token_file = PathBuf::from(env.get("AZURE_FEDERATED_TOKEN_FILE").unwrap_or_default());
        if let Err(e) = std::fs::metadata(&token_file) {
            return Ready::Broken(format!(
                "cannot read AZURE_FEDERATED_TOKEN_FILE {}: {e}",
                token_file.display()
            ));
        }
        let get = |n| env.get(n).map(str::to_owned);
        match WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: options.clone(),
            },
            client_id: get("AZURE_CLIENT_ID"),
            tenant_id: get("AZURE_TENANT_ID"),
            token_file_path: Some(token_file),
        })) {
            Ok(c) => Ready::Credential(c as Arc<dyn TokenCredential>),
            Err(e) => Ready::Broken(sanitize_sdk_message(&e.to_string())),
        }
    }

    fn uses_entra(&self) -> bool {
        true
    }

    fn hint(&self) -> &'static str {
        "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE (a federated credential of that app)"
    }
}
