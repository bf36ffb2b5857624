//! Azure Arc-enabled servers: `IDENTITY_ENDPOINT` + `IMDS_ENDPOINT` without `IDENTITY_HEADER`.
//! The agent's endpoint first answers 401 naming a key file that only local administrators and
//! the `himds` group can read; its content, sent back, proves we are on the machine.

use crate::config::CredentialChoice;
use crate::credential::env::CredentialEnv;
use crate::credential::link::{endpoint_url, not_set, pipeline, Link, LinkPlan, Material, Ready};
use crate::credential::msi::{EndpointCredential, Protocol, ARC_KEY_DIR};
use azure_core::http::ClientOptions;
use std::sync::{Arc, Mutex};

pub(crate) struct AzureArc;

impl Link for AzureArc {
    fn host_local(&self) -> bool {
        true
    }

    fn id(&self) -> &'static str {
        "azure-arc"
    }

    fn group(&self) -> CredentialChoice {
        CredentialChoice::ManagedIdentity
    }

    fn plan(&self, env: &CredentialEnv, _pinned: bool) -> LinkPlan {
        let missing = env.missing(&["IDENTITY_ENDPOINT", "IMDS_ENDPOINT"]);
        if !missing.is_empty() {
            return LinkPlan::Skip(not_set(&missing));
        }
        if env.get("IDENTITY_HEADER").is_some() {
            return LinkPlan::Skip(
                "IDENTITY_HEADER is set (App Service, not Azure Arc)".to_owned(),
            );
        }
        if !cfg!(target_os = "linux") {
            return LinkPlan::Unsupported(
                "Azure Arc's managed identity is supported on Linux only".to_owned(),
            );
        }
        if env.get("AZURE_CLIENT_ID").is_some() {
            return LinkPlan::Refused(
                "AZURE_CLIENT_ID is set, but Azure Arc serves only the machine's system-assigned identity"
                    .to_owned(),
            );
        }
        match endpoint_url(
            "IDENTITY_ENDPOINT",
            env.get("IDENTITY_ENDPOINT").unwrap_or_default(),
        ) {
            Ok(_) => LinkPlan::Use("managed identity (Azure Arc: IMDS_ENDPOINT)".to_owned()),
            Err(why) => LinkPlan::Refused(why),
        }
    }

    fn cache_key(&self, env: &CredentialEnv, line: &mut dyn FnMut(&str, &str)) {
        line("endpoint", env.get("IDENTITY_ENDPOINT").unwrap_or_default());
    }

    fn seal_material(&self, _env: &CredentialEnv) -> Material {
        // Sealed under none: the agent's key file changes per challenge and any process allowed to read it can ask for the same token (documented in docs/security.md).
        Material::Public
    }

    fn build(&self, env: &CredentialEnv, options: &ClientOptions) -> Ready {
        match endpoint_url(
            "IDENTITY_ENDPOINT",
            env.get("IDENTITY_ENDPOINT").unwrap_or_default(),
        ) {
            Ok(endpoint) => Ready::Credential(Arc::new(EndpointCredential {
                protocol: Protocol::Arc,
                endpoint,
                secret: None,
                client_id: None,
                pipeline: pipeline(options),
                arc_key_dir: ARC_KEY_DIR.into(),
                cache: Mutex::default(),
            })),
            Err(why) => Ready::Broken(why),
        }
    }

    fn hint(&self) -> &'static str {
        "run hg as a user in the himds group (or root), which may read /var/opt/azcmagent/tokens/ (only .key files of \
         at most 4096 bytes directly in it are read), give the machine's identity a role on the vault; unset AZURE_CLIENT_ID"
    }
}
