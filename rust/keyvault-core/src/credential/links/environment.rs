//! A service principal's secret from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`.

use crate::config::CredentialChoice;
use crate::credential::env::CredentialEnv;
use crate::credential::link::{digest, not_set, Link, LinkPlan, Ready};
use crate::credential::sdk_message::sanitize_sdk_message;
use azure_core::{
    credentials::{Secret, TokenCredential},
    http::ClientOptions,
};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use std::sync::Arc;

pub(crate) struct Environment;

impl Link for Environment {
    fn id(&self) -> &'static str {
        "environment"
    }

    fn group(&self) -> CredentialChoice {
        CredentialChoice::Environment
    }

    fn plan(&self, env: &CredentialEnv, _pinned: bool) -> LinkPlan {
        let base = env.missing(&["AZURE_TENANT_ID", "AZURE_CLIENT_ID"]);
        let has_secret = env.get("AZURE_CLIENT_SECRET").is_some();
        let has_cert = env.get("AZURE_CLIENT_CERTIFICATE_PATH").is_some();
        if base.is_empty() && has_secret {
            LinkPlan::Use("service principal secret (AZURE_CLIENT_SECRET)".to_owned())
        } else if base.is_empty() && has_cert {
            LinkPlan::Unsupported(
                "AZURE_CLIENT_CERTIFICATE_PATH is set, but certificate credentials are not supported \
                 (azure_identity 1.0.0 needs OpenSSL for them); use AZURE_CLIENT_SECRET or workload identity"
                    .to_owned(),
            )
        } else {
            let mut missing = base;
            if !has_secret {
                missing.push("AZURE_CLIENT_SECRET");
            }
            LinkPlan::Skip(not_set(&missing))
        }
    }

    fn cache_key(&self, env: &CredentialEnv, line: &mut dyn FnMut(&str, &str)) {
        line("tenant", env.get("AZURE_TENANT_ID").unwrap_or_default());
        line("client", env.get("AZURE_CLIENT_ID").unwrap_or_default());
        let secret = env.get("AZURE_CLIENT_SECRET").unwrap_or_default();
        line("secret", &digest(secret.as_bytes()));
    }

    fn build(&self, env: &CredentialEnv, options: &ClientOptions) -> Ready {
        let get = |n| env.get(n).unwrap_or_default().to_owned();
        match ClientSecretCredential::new(
            &get("AZURE_TENANT_ID"),
            get("AZURE_CLIENT_ID"),
            Secret::new(get("AZURE_CLIENT_SECRET")),
            Some(ClientSecretCredentialOptions {
                client_options: options.clone(),
            }),
        ) {
            Ok(c) => Ready::Credential(c as Arc<dyn TokenCredential>),
            Err(e) => Ready::Broken(sanitize_sdk_message(&e.to_string())),
        }
    }

    fn uses_entra(&self) -> bool {
        true
    }

    fn hint(&self) -> &'static str {
        "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET of a service principal that can use the vault"
    }
}
