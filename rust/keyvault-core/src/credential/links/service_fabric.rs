//! Service Fabric (`IDENTITY_SERVER_THUMBPRINT`): recognised and refused, never sent to the
//! App Service path. Its protocol pins a self-signed server certificate by thumbprint, which
//! needs a TLS verifier of its own that no test here could check against the real service;
//! build agents do not run as Service Fabric applications.

use crate::config::CredentialChoice;
use crate::credential::env::CredentialEnv;
use crate::credential::link::{Link, LinkPlan, Material, Ready};
use azure_core::http::ClientOptions;

pub(crate) struct ServiceFabric;

impl Link for ServiceFabric {
    fn host_local(&self) -> bool {
        true
    }

    fn id(&self) -> &'static str {
        "service-fabric"
    }

    fn group(&self) -> CredentialChoice {
        CredentialChoice::ManagedIdentity
    }

    fn plan(&self, env: &CredentialEnv, _pinned: bool) -> LinkPlan {
        if env.get("IDENTITY_SERVER_THUMBPRINT").is_none() {
            return LinkPlan::Skip("IDENTITY_SERVER_THUMBPRINT is not set".to_owned());
        }
        LinkPlan::Unsupported(
            "IDENTITY_SERVER_THUMBPRINT is set: this is a Service Fabric managed identity, which hg-keyvault does not support"
                .to_owned(),
        )
    }

    fn cache_key(&self, _env: &CredentialEnv, _line: &mut dyn FnMut(&str, &str)) {}

    fn seal_material(&self, _env: &CredentialEnv) -> Material {
        // Sealed under never used: the link is refused.
        Material::Public
    }

    fn build(&self, _env: &CredentialEnv, _options: &ClientOptions) -> Ready {
        Ready::Broken("Service Fabric managed identity is not supported".to_owned())
    }

    fn hint(&self) -> &'static str {
        "give the job another identity: a workload identity (AZURE_FEDERATED_TOKEN_FILE), a service principal, \
         or run hg outside the Service Fabric application"
    }
}
