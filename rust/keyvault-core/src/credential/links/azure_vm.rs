//! An Azure VM or scale set's managed identity through IMDS (169.254.169.254), with the SDK's
//! `ManagedIdentityCredential`. `auto` uses it only when the SMBIOS chassis asset tag says this
//! is an Azure VM (no packet needed to know); off Azure nothing is ever sent there.
//! `keyvault.credential = managed-identity` uses it without that evidence.

use crate::config::CredentialChoice;
use crate::credential::env::CredentialEnv;
use crate::credential::link::{Link, LinkPlan, Material, Ready};
use crate::credential::sdk_message::sanitize_sdk_message;
use azure_core::{credentials::TokenCredential, http::ClientOptions};
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use std::sync::Arc;

pub(crate) struct AzureVm;

/// Variables that mean another endpoint serves this host's identity (and that the SDK would
/// follow instead of IMDS).
const OTHER_ENDPOINTS: [&str; 3] = [
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
    "IDENTITY_SERVER_THUMBPRINT",
];

impl Link for AzureVm {
    fn host_local(&self) -> bool {
        true
    }

    fn id(&self) -> &'static str {
        "azure-vm"
    }

    fn group(&self) -> CredentialChoice {
        CredentialChoice::ManagedIdentity
    }

    fn plan(&self, env: &CredentialEnv, pinned: bool) -> LinkPlan {
        if let Some(other) = OTHER_ENDPOINTS.iter().find(|n| env.get(n).is_some()) {
            return LinkPlan::Skip(format!(
                "{other} is set: this host's managed identity is not served by IMDS"
            ));
        }
        if env.is_azure_vm() {
            LinkPlan::Use("managed identity (Azure VM: SMBIOS asset tag)".to_owned())
        } else if pinned {
            LinkPlan::Use(
                "managed identity (Azure VM: keyvault.credential = managed-identity)".to_owned(),
            )
        } else {
            LinkPlan::Skip(
                "not an Azure VM (the SMBIOS chassis asset tag is not Azure's), so IMDS is not asked".to_owned(),
            )
        }
    }

    fn cache_key(&self, env: &CredentialEnv, line: &mut dyn FnMut(&str, &str)) {
        line(
            "imds-client",
            env.get("AZURE_CLIENT_ID").unwrap_or_default(),
        );
    }

    fn seal_material(&self, _env: &CredentialEnv) -> Material {
        // Sealed under none: every process on the VM can ask IMDS for the same token (documented).
        Material::Public
    }

    fn build(&self, env: &CredentialEnv, options: &ClientOptions) -> Ready {
        match ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: env
                .get("AZURE_CLIENT_ID")
                .map(|id| UserAssignedId::ClientId(id.to_owned())),
            client_options: options.clone(),
        })) {
            Ok(c) => Ready::Credential(c as Arc<dyn TokenCredential>),
            Err(e) => Ready::Broken(sanitize_sdk_message(&e.to_string())),
        }
    }

    fn hint(&self) -> &'static str {
        "assign the VM a managed identity (az vm identity assign) and give it a role on the vault; \
         AZURE_CLIENT_ID selects a user-assigned one"
    }
}
