//! GitHub, Forgejo and Gitea Actions: the job's own OIDC token, asked of
//! `ACTIONS_ID_TOKEN_REQUEST_URL` (present only when the workflow grants `id-token: write`)
//! with the audience Entra expects, and exchanged as a client assertion for the app
//! `AZURE_CLIENT_ID` in `AZURE_TENANT_ID`. The CI token is asked for afresh at each exchange
//! and kept nowhere.

use crate::config::CredentialChoice;
use crate::credential::env::CredentialEnv;
use crate::credential::link::{
    app_ids, endpoint_url, env_material, not_set, pipeline, Link, LinkPlan, Material, Ready,
};
use crate::credential::sdk_message::sanitize_sdk_message;
use crate::transport;
use async_trait::async_trait;
use azure_core::{
    credentials::{Secret, TokenCredential},
    http::{ClientMethodOptions, ClientOptions, Method, Pipeline, PipelineSendOptions, Request},
};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
};
use std::{fmt, sync::Arc};

/// The audience Entra accepts in a federated credential's assertion.
pub(crate) const ENTRA_AUDIENCE: &str = "api://AzureADTokenExchange";

pub(crate) struct GithubActions;

/// Which Actions implementation runs the job (they share the protocol).
fn flavour(env: &CredentialEnv) -> &'static str {
    if env.get("FORGEJO_ACTIONS").is_some() {
        "Forgejo Actions"
    } else if env.get("GITEA_ACTIONS").is_some() {
        "Gitea Actions"
    } else {
        "GitHub Actions"
    }
}

impl Link for GithubActions {
    fn id(&self) -> &'static str {
        "github-actions"
    }

    fn group(&self) -> CredentialChoice {
        CredentialChoice::CiOidc
    }

    fn plan(&self, env: &CredentialEnv, _pinned: bool) -> LinkPlan {
        let request = env.missing(&[
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        ]);
        if !request.is_empty() {
            return LinkPlan::Skip(format!(
                "{} (not an Actions job, or the job lacks `permissions: id-token: write`)",
                not_set(&request)
            ));
        }
        if let Err(missing) = app_ids(env) {
            return LinkPlan::Skip(format!(
                "{} (the app whose federated credential trusts this workflow)",
                not_set(&missing)
            ));
        }
        let url = env.get("ACTIONS_ID_TOKEN_REQUEST_URL").unwrap_or_default();
        match endpoint_url("ACTIONS_ID_TOKEN_REQUEST_URL", url) {
            Ok(_) => LinkPlan::Use(format!("{} OIDC", flavour(env))),
            Err(why) => LinkPlan::Refused(why),
        }
    }

    fn cache_key(&self, env: &CredentialEnv, line: &mut dyn FnMut(&str, &str)) {
        line("tenant", env.get("AZURE_TENANT_ID").unwrap_or_default());
        line("client", env.get("AZURE_CLIENT_ID").unwrap_or_default());
        // The token endpoint names the run: each job gets its own entry.
        line(
            "oidc-endpoint",
            env.get("ACTIONS_ID_TOKEN_REQUEST_URL").unwrap_or_default(),
        );
    }

    fn seal_material(&self, env: &CredentialEnv) -> Material {
        // Sealed under the job's own request token (another job's differs).
        env_material(env, "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    }

    fn build(&self, env: &CredentialEnv, options: &ClientOptions) -> Ready {
        let Ok((tenant, client)) = app_ids(env) else {
            return Ready::Broken("AZURE_TENANT_ID or AZURE_CLIENT_ID vanished".to_owned());
        };
        let url = match id_token_url(env.get("ACTIONS_ID_TOKEN_REQUEST_URL").unwrap_or_default()) {
            Ok(u) => u,
            Err(why) => return Ready::Broken(why),
        };
        let assertion = ActionsIdToken {
            flavour: flavour(env),
            url,
            request_token: Secret::new(
                env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
                    .unwrap_or_default()
                    .to_owned(),
            ),
            pipeline: pipeline(options),
        };
        match ClientAssertionCredential::new(
            tenant,
            client,
            assertion,
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
        "grant the job `permissions: id-token: write`, set AZURE_CLIENT_ID and AZURE_TENANT_ID of an app whose \
         federated credential names this repository (issuer, subject, audience api://AzureADTokenExchange)"
    }
}

/// The runtime's URL with the audience Entra expects appended to its own query (the runtime's
/// URL already carries `api-version`; the SDKs append `&audience=`).
fn id_token_url(raw: &str) -> Result<url::Url, String> {
    let mut url = endpoint_url("ACTIONS_ID_TOKEN_REQUEST_URL", raw)?;
    url.query_pairs_mut()
        .append_pair("audience", ENTRA_AUDIENCE);
    Ok(url)
}

/// The Actions runtime's ID token endpoint.
struct ActionsIdToken {
    flavour: &'static str,
    url: url::Url,
    request_token: Secret,
    pipeline: Pipeline,
}

impl fmt::Debug for ActionsIdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionsIdToken")
            .field("url", &transport::display_url(&self.url))
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct IdTokenResponse {
    value: String,
}

#[async_trait]
impl ClientAssertion for ActionsIdToken {
    async fn secret(&self, options: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        let mut req = Request::new(self.url.clone(), Method::Get);
        req.insert_header(
            "authorization",
            format!("bearer {}", self.request_token.secret()),
        );
        req.insert_header("accept", "application/json");
        let ctx = options.map(|o| o.context).unwrap_or_default();
        let rsp = self
            .pipeline
            .send(
                &ctx,
                &mut req,
                Some(PipelineSendOptions {
                    skip_checks: true,
                    ..Default::default()
                }),
            )
            .await?;
        let status = u16::from(rsp.status());
        if !(200..300).contains(&status) {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!(
                    "the {} OIDC token endpoint {} answered HTTP {status}",
                    self.flavour,
                    transport::display_url(&self.url)
                ),
            ));
        }
        let body: IdTokenResponse = serde_json::from_slice(rsp.body()).map_err(|_| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::DataConversion,
                format!(
                    "the {} OIDC token endpoint answered something that is not {{\"value\": <token>}}",
                    self.flavour
                ),
            )
        })?;
        Ok(body.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audience_is_appended_to_the_runtime_query() {
        let u = id_token_url(
            "https://pipelinesghubeus1.actions.githubusercontent.com/abc/_apis/distributedtask/hubs/Actions/plans/p/jobs/j/idtoken?api-version=2.0",
        )
        .unwrap();
        let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("api-version".to_owned(), "2.0".to_owned()),
                (
                    "audience".to_owned(),
                    "api://AzureADTokenExchange".to_owned()
                )
            ]
        );
        let u = id_token_url("http://127.0.0.1:3000/api/actions/idtoken").unwrap();
        assert_eq!(u.query(), Some("audience=api%3A%2F%2FAzureADTokenExchange"));
        assert!(id_token_url("http://forgejo.lan/idtoken").is_err());
    }
}
