//! Cloud Shell (`MSI_ENDPOINT`) and Azure Machine Learning (`MSI_ENDPOINT` + `MSI_SECRET`).

use crate::config::CredentialChoice;
use crate::credential::env::CredentialEnv;
use crate::credential::link::{
    digest, endpoint_url, env_material, pipeline, Link, LinkPlan, Material, Ready,
};
use crate::credential::msi::{EndpointCredential, Protocol, ARC_KEY_DIR};
use azure_core::{credentials::Secret, http::ClientOptions};
use std::sync::{Arc, Mutex};

pub(crate) struct MsiEndpoint;

impl Link for MsiEndpoint {
    fn host_local(&self) -> bool {
        true
    }

    fn id(&self) -> &'static str {
        "msi-endpoint"
    }

    fn group(&self) -> CredentialChoice {
        CredentialChoice::ManagedIdentity
    }

    fn plan(&self, env: &CredentialEnv, _pinned: bool) -> LinkPlan {
        let Some(endpoint) = env.get("MSI_ENDPOINT") else {
            return LinkPlan::Skip("MSI_ENDPOINT is not set".to_owned());
        };
        if env.get("IDENTITY_ENDPOINT").is_some() {
            return LinkPlan::Skip(
                "IDENTITY_ENDPOINT is set; the host's identity is served there".to_owned(),
            );
        }
        let via = if env.get("MSI_SECRET").is_some() {
            "managed identity (Azure Machine Learning: MSI_ENDPOINT, MSI_SECRET)"
        } else {
            "managed identity (Cloud Shell: MSI_ENDPOINT)"
        };
        match endpoint_url("MSI_ENDPOINT", endpoint) {
            Ok(_) => LinkPlan::Use(via.to_owned()),
            Err(why) => LinkPlan::Refused(why),
        }
    }

    fn cache_key(&self, env: &CredentialEnv, line: &mut dyn FnMut(&str, &str)) {
        line("endpoint", env.get("MSI_ENDPOINT").unwrap_or_default());
        line("client", env.get("AZURE_CLIENT_ID").unwrap_or_default());
        let secret = env.get("MSI_SECRET").unwrap_or_default();
        line("secret", &digest(secret.as_bytes()));
    }

    fn seal_material(&self, env: &CredentialEnv) -> Material {
        // Sealed under Azure ML's secret header; Cloud Shell has none (documented).
        env_material(env, "MSI_SECRET")
    }

    fn build(&self, env: &CredentialEnv, options: &ClientOptions) -> Ready {
        let secret = env.get("MSI_SECRET").map(|s| Secret::new(s.to_owned()));
        match endpoint_url("MSI_ENDPOINT", env.get("MSI_ENDPOINT").unwrap_or_default()) {
            Ok(endpoint) => Ready::Credential(Arc::new(EndpointCredential {
                protocol: if secret.is_some() {
                    Protocol::AzureMl
                } else {
                    Protocol::CloudShell
                },
                endpoint,
                secret,
                client_id: env.get("AZURE_CLIENT_ID").map(str::to_owned),
                pipeline: pipeline(options),
                arc_key_dir: ARC_KEY_DIR.into(),
                cache: Mutex::default(),
            })),
            Err(why) => Ready::Broken(why),
        }
    }

    fn hint(&self) -> &'static str {
        "in Cloud Shell, sign in again; on Azure Machine Learning compute, assign it a managed identity with a role on the vault"
    }
}
