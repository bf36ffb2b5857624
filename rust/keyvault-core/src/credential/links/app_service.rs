//! App Service and Container Apps: `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (api-version
//! 2019-08-01). The real endpoint is plain `http://localhost:<port>/...`; http is accepted for
//! loopback only.

use crate::config::CredentialChoice;
use crate::credential::env::CredentialEnv;
use crate::credential::link::{
    digest, endpoint_url, env_material, not_set, pipeline, Link, LinkPlan, Material, Ready,
};
use crate::credential::msi::{EndpointCredential, Protocol, ARC_KEY_DIR};
use azure_core::{credentials::Secret, http::ClientOptions};
use std::sync::{Arc, Mutex};

pub(crate) struct AppService;

impl Link for AppService {
    fn host_local(&self) -> bool {
        true
    }

    fn id(&self) -> &'static str {
        "app-service"
    }

    fn group(&self) -> CredentialChoice {
        CredentialChoice::ManagedIdentity
    }

    fn plan(&self, env: &CredentialEnv, _pinned: bool) -> LinkPlan {
        let missing = env.missing(&["IDENTITY_ENDPOINT", "IDENTITY_HEADER"]);
        if !missing.is_empty() {
            return LinkPlan::Skip(not_set(&missing));
        }
        if env.get("IDENTITY_SERVER_THUMBPRINT").is_some() {
            return LinkPlan::Skip(
                "IDENTITY_SERVER_THUMBPRINT is set (Service Fabric, whose protocol differs)"
                    .to_owned(),
            );
        }
        match endpoint_url(
            "IDENTITY_ENDPOINT",
            env.get("IDENTITY_ENDPOINT").unwrap_or_default(),
        ) {
            Ok(_) => LinkPlan::Use(
                "managed identity (App Service / Container Apps: IDENTITY_ENDPOINT)".to_owned(),
            ),
            Err(why) => LinkPlan::Refused(why),
        }
    }

    fn cache_key(&self, env: &CredentialEnv, line: &mut dyn FnMut(&str, &str)) {
        line("endpoint", env.get("IDENTITY_ENDPOINT").unwrap_or_default());
        line("client", env.get("AZURE_CLIENT_ID").unwrap_or_default());
        let header = env.get("IDENTITY_HEADER").unwrap_or_default();
        line("header", &digest(header.as_bytes()));
    }

    fn seal_material(&self, env: &CredentialEnv) -> Material {
        // Sealed under the identity header the platform gives this app only.
        env_material(env, "IDENTITY_HEADER")
    }

    fn build(&self, env: &CredentialEnv, options: &ClientOptions) -> Ready {
        match endpoint_url(
            "IDENTITY_ENDPOINT",
            env.get("IDENTITY_ENDPOINT").unwrap_or_default(),
        ) {
            Ok(endpoint) => Ready::Credential(Arc::new(EndpointCredential {
                protocol: Protocol::AppService,
                endpoint,
                secret: Some(Secret::new(
                    env.get("IDENTITY_HEADER").unwrap_or_default().to_owned(),
                )),
                client_id: env.get("AZURE_CLIENT_ID").map(str::to_owned),
                pipeline: pipeline(options),
                arc_key_dir: ARC_KEY_DIR.into(),
                cache: Mutex::default(),
            })),
            Err(why) => Ready::Broken(why),
        }
    }

    fn hint(&self) -> &'static str {
        "turn on the app's managed identity (az webapp identity assign / az containerapp identity assign) \
         and give it a role on the vault"
    }
}
