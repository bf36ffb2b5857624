//! Azure Pipelines: the job's OIDC token for a workload-identity service connection, exchanged
//! as a client assertion, with the SDK's own `AzurePipelinesCredential`. The AzureCLI@2 and
//! AzurePowerShell@5 tasks describe their service connection in `AZURESUBSCRIPTION_*`; a
//! pipeline can set `AZURE_CLIENT_ID`/`AZURE_TENANT_ID` instead of the last two.

use crate::config::CredentialChoice;
use crate::credential::env::CredentialEnv;
use crate::credential::link::{
    endpoint_url, env_material, not_set, Link, LinkPlan, Material, Ready,
};
use crate::credential::sdk_message::sanitize_sdk_message;
use azure_core::{
    credentials::{Secret, TokenCredential},
    http::ClientOptions,
};
use azure_identity::{
    AzurePipelinesCredential, AzurePipelinesCredentialOptions, ClientAssertionCredentialOptions,
};
use std::sync::Arc;

pub(crate) struct AzurePipelines;

const CONNECTION: &str = "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID";

/// The first of `names` that is set.
fn first<'a>(env: &'a CredentialEnv, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| env.get(n))
}

fn client_id(env: &CredentialEnv) -> Option<&str> {
    first(env, &["AZURESUBSCRIPTION_CLIENT_ID", "AZURE_CLIENT_ID"])
}

fn tenant_id(env: &CredentialEnv) -> Option<&str> {
    first(env, &["AZURESUBSCRIPTION_TENANT_ID", "AZURE_TENANT_ID"])
}

impl Link for AzurePipelines {
    fn id(&self) -> &'static str {
        "azure-pipelines"
    }

    fn group(&self) -> CredentialChoice {
        CredentialChoice::CiOidc
    }

    fn plan(&self, env: &CredentialEnv, _pinned: bool) -> LinkPlan {
        let missing = env.missing(&["SYSTEM_OIDCREQUESTURI", "SYSTEM_ACCESSTOKEN", CONNECTION]);
        if !missing.is_empty() {
            return LinkPlan::Skip(format!(
                "{} (not an Azure Pipelines task with a service connection and SYSTEM_ACCESSTOKEN mapped)",
                not_set(&missing)
            ));
        }
        if client_id(env).is_none() || tenant_id(env).is_none() {
            return LinkPlan::Skip(
                "neither AZURESUBSCRIPTION_CLIENT_ID/AZURESUBSCRIPTION_TENANT_ID nor AZURE_CLIENT_ID/AZURE_TENANT_ID are set"
                    .to_owned(),
            );
        }
        let uri = env.get("SYSTEM_OIDCREQUESTURI").unwrap_or_default();
        match endpoint_url("SYSTEM_OIDCREQUESTURI", uri) {
            Ok(_) => LinkPlan::Use("Azure Pipelines OIDC (service connection)".to_owned()),
            Err(why) => LinkPlan::Refused(why),
        }
    }

    fn cache_key(&self, env: &CredentialEnv, line: &mut dyn FnMut(&str, &str)) {
        line("tenant", tenant_id(env).unwrap_or_default());
        line("client", client_id(env).unwrap_or_default());
        line(
            "service-connection",
            env.get(CONNECTION).unwrap_or_default(),
        );
        line(
            "oidc-endpoint",
            env.get("SYSTEM_OIDCREQUESTURI").unwrap_or_default(),
        );
    }

    fn seal_material(&self, env: &CredentialEnv) -> Material {
        // Sealed under the job's own access token.
        env_material(env, "SYSTEM_ACCESSTOKEN")
    }

    fn build(&self, env: &CredentialEnv, options: &ClientOptions) -> Ready {
        // The SDK reads SYSTEM_OIDCREQUESTURI from the process environment; the snapshot
        // comes from the same environment (`CredentialEnv::from_process`).
        match AzurePipelinesCredential::new(
            tenant_id(env).unwrap_or_default().to_owned(),
            client_id(env).unwrap_or_default().to_owned(),
            env.get(CONNECTION).unwrap_or_default(),
            Secret::new(env.get("SYSTEM_ACCESSTOKEN").unwrap_or_default().to_owned()),
            Some(AzurePipelinesCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options: options.clone(),
                },
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
        "run hg inside an AzureCLI@2 task of a workload-identity service connection and map SYSTEM_ACCESSTOKEN \
         into its env (env: SYSTEM_ACCESSTOKEN: $(System.AccessToken))"
    }
}
