//! GitLab CI and Heptapod `id_tokens`: the job's ID token, in the variable that
//! `keyvault.id-token-env` names, used as the client assertion for `AZURE_CLIENT_ID` in
//! `AZURE_TENANT_ID`. Read from the snapshot at each exchange, written nowhere.

use crate::config::CredentialChoice;
use crate::credential::env::CredentialEnv;
use crate::credential::link::{
    app_ids, digest, env_material, not_set, Link, LinkPlan, Material, Ready,
};
use crate::credential::sdk_message::sanitize_sdk_message;
use async_trait::async_trait;
use azure_core::{
    credentials::{Secret, TokenCredential},
    http::{ClientMethodOptions, ClientOptions},
};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
};
use std::{fmt, sync::Arc};

pub(crate) struct GitlabCi;

fn flavour(env: &CredentialEnv) -> &'static str {
    match env.get("CI_SERVER_NAME") {
        Some(name) if name.to_ascii_lowercase().contains("heptapod") => "Heptapod CI",
        _ => "GitLab CI",
    }
}

impl Link for GitlabCi {
    fn id(&self) -> &'static str {
        "gitlab-ci"
    }

    fn group(&self) -> CredentialChoice {
        CredentialChoice::CiOidc
    }

    fn plan(&self, env: &CredentialEnv, _pinned: bool) -> LinkPlan {
        let Some(variable) = env.id_token_variable() else {
            return LinkPlan::Skip("keyvault.id-token-env is not set".to_owned());
        };
        if env.get(variable).is_none() {
            return LinkPlan::Skip(format!(
                "{} (keyvault.id-token-env; declare it under the job's id_tokens:)",
                not_set(&[variable])
            ));
        }
        if let Err(missing) = app_ids(env) {
            return LinkPlan::Skip(format!(
                "{} (the app whose federated credential trusts this project)",
                not_set(&missing)
            ));
        }
        LinkPlan::Use(format!("{} id_token ({variable})", flavour(env)))
    }

    fn cache_key(&self, env: &CredentialEnv, line: &mut dyn FnMut(&str, &str)) {
        line("tenant", env.get("AZURE_TENANT_ID").unwrap_or_default());
        line("client", env.get("AZURE_CLIENT_ID").unwrap_or_default());
        let variable = env.id_token_variable().unwrap_or_default();
        line("id-token-env", variable);
        // Each job's token differs: a later job on the same runner (another branch, which the
        // federated credential may not trust) never reuses an earlier job's access token.
        let token = env.get(variable).unwrap_or_default();
        line("id-token", &digest(token.as_bytes()));
    }

    fn seal_material(&self, env: &CredentialEnv) -> Material {
        // Sealed under the job's ID token.
        env_material(env, env.id_token_variable().unwrap_or_default())
    }

    fn build(&self, env: &CredentialEnv, options: &ClientOptions) -> Ready {
        let (Ok((tenant, client)), Some(variable)) = (app_ids(env), env.id_token_variable()) else {
            return Ready::Broken("the ID token settings vanished".to_owned());
        };
        let token = Secret::new(env.get(variable).unwrap_or_default().to_owned());
        match ClientAssertionCredential::new(
            tenant,
            client,
            EnvIdToken { token },
            Some(ClientAssertionCredentialOptions {
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
        "declare an id_tokens: entry with aud: api://AzureADTokenExchange, name it in keyvault.id-token-env, \
         and set AZURE_CLIENT_ID and AZURE_TENANT_ID of an app whose federated credential names this project"
    }
}

/// The ID token the CI put in the job's environment.
struct EnvIdToken {
    token: Secret,
}

impl fmt::Debug for EnvIdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnvIdToken(****)")
    }
}

#[async_trait]
impl ClientAssertion for EnvIdToken {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        Ok(self.token.secret().to_owned())
    }
}
