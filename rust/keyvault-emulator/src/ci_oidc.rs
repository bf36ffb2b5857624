//! The CI systems' OIDC issuers: GitHub/Forgejo Actions, Azure Pipelines and GitLab/Heptapod.
//! Each mints RS256 ID tokens and publishes its discovery document and JWKS under its issuer URL,
//! which is where Entra looks for the keys of a federated assertion.
//!
//! - GitHub: `ACTIONS_ID_TOKEN_REQUEST_URL` is called with `Authorization: Bearer
//!   $ACTIONS_ID_TOKEN_REQUEST_TOKEN` and `&audience=...` appended; it answers `{"count", "value"}`
//!   (actions/toolkit `packages/core/src/oidc-utils.ts` reads `value`). Issuer
//!   `https://token.actions.githubusercontent.com`, JWKS at `<issuer>/.well-known/jwks`, subject
//!   `repo:<owner>/<repo>:ref:refs/heads/<branch>` (GitHub docs, "About security hardening with
//!   OpenID Connect"). Here the issuer is `<base>/github`.
//! - Azure Pipelines: `POST $SYSTEM_OIDCREQUESTURI?api-version=7.1&serviceConnectionId=<id>` with
//!   `Authorization: Bearer $SYSTEM_ACCESSTOKEN` and a JSON content type, answer `{"oidcToken"}`
//!   (azure-identity python `_credentials/azure_pipelines.py`). Issuer
//!   `https://vstoken.dev.azure.com/<organization id>`, subject `sc://<org>/<project>/<connection>`.
//!   Here the issuer is `<base>/pipelines/<organization id>`.
//! - GitLab: the token is minted at job start into the variable the job's `id_tokens:` names, so
//!   there is no request endpoint; tests mint one through the control API. Issuer
//!   `https://gitlab.com`, JWKS at `/oauth/discovery/keys`, subject
//!   `project_path:<group>/<project>:ref_type:branch:ref:<branch>`. Here `<base>/gitlab`.

use crate::app::App;
use crate::http::{json, new_uuid, now, query_get, Resp};
use crate::principals::random_secret;
use crate::rs256::{self, SigningKey};
use hyper::HeaderMap;
use serde_json::{json, Map, Value};
use std::sync::Mutex;

/// The audience Entra expects in a federated assertion (the default of every Azure recipe).
pub const ENTRA_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The Azure DevOps organization id in the Pipelines issuer URL (fixed so tests can name it).
pub const PIPELINES_ORG_ID: &str = "4f5c2e1a-0000-4000-8000-00000000ad0a";
/// The one service connection the emulated Azure DevOps project has.
pub const SERVICE_CONNECTION_ID: &str = "5c0e0000-0000-4000-8000-0000000005c1";
pub const SERVICE_CONNECTION_NAME: &str = "hg-keyvault";
/// An ID token lives 5 minutes at GitHub; the others are close to it.
const ID_TOKEN_LIFETIME: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ci {
    GitHub,
    Pipelines,
    GitLab,
}

impl Ci {
    pub const ALL: [Ci; 3] = [Ci::GitHub, Ci::Pipelines, Ci::GitLab];

    pub fn name(self) -> &'static str {
        match self {
            Ci::GitHub => "github",
            Ci::Pipelines => "pipelines",
            Ci::GitLab => "gitlab",
        }
    }

    pub fn from_name(name: &str) -> Option<Ci> {
        Ci::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The issuer's path under the emulator's base URL.
    fn path(self) -> String {
        match self {
            Ci::Pipelines => format!("/pipelines/{PIPELINES_ORG_ID}"),
            other => format!("/{}", other.name()),
        }
    }

    fn jwks_path(self) -> &'static str {
        match self {
            Ci::GitLab => "/oauth/discovery/keys",
            _ => "/.well-known/jwks",
        }
    }

    /// The claims a token of this CI carries by default (a push to main of one repository).
    fn default_claims(self) -> Value {
        match self {
            Ci::GitHub => json!({
                "sub": "repo:hg-keyvault/ci:ref:refs/heads/main",
                "repository": "hg-keyvault/ci",
                "repository_owner": "hg-keyvault",
                "ref": "refs/heads/main",
                "ref_type": "branch",
                "run_id": "7301234567",
                "run_number": "42",
                "run_attempt": "1",
                "job_workflow_ref": "hg-keyvault/ci/.github/workflows/ci.yml@refs/heads/main",
                "workflow": "ci",
                "event_name": "push",
                "actor": "ci-bot",
                "runner_environment": "github-hosted",
            }),
            Ci::Pipelines => json!({
                "sub": format!("sc://hg-keyvault/ci/{SERVICE_CONNECTION_NAME}"),
            }),
            Ci::GitLab => json!({
                "sub": "project_path:hg-keyvault/ci:ref_type:branch:ref:main",
                "namespace_path": "hg-keyvault",
                "project_path": "hg-keyvault/ci",
                "ref": "main",
                "ref_type": "branch",
                "pipeline_id": "1234567",
                "job_id": "7654321",
                "user_login": "ci-bot",
            }),
        }
    }
}

struct Issuer {
    key: SigningKey,
    /// Claims the tests set (control API), merged over the defaults.
    overrides: Map<String, Value>,
}

pub struct CiIssuers {
    issuers: Mutex<Vec<(Ci, Issuer)>>,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN` of the emulated run.
    pub github_request_token: String,
    /// `SYSTEM_ACCESSTOKEN` of the emulated pipeline job.
    pub pipelines_access_token: String,
}

impl CiIssuers {
    pub fn new() -> Self {
        let issuers = Ci::ALL
            .into_iter()
            .map(|ci| {
                (
                    ci,
                    Issuer {
                        key: SigningKey::generate(),
                        overrides: Map::new(),
                    },
                )
            })
            .collect();
        CiIssuers {
            issuers: Mutex::new(issuers),
            github_request_token: random_secret(),
            pipelines_access_token: random_secret(),
        }
    }

    fn with<T>(&self, ci: Ci, f: impl FnOnce(&mut Issuer) -> T) -> T {
        let mut all = self.issuers.lock().unwrap_or_else(|e| e.into_inner());
        let (_, issuer) = all
            .iter_mut()
            .find(|(c, _)| *c == ci)
            .expect("every CI has an issuer");
        f(issuer)
    }

    /// Replaces the claims tests override (e.g. another `sub`); an empty map restores defaults.
    pub fn set_claims(&self, ci: Ci, claims: Map<String, Value>) {
        self.with(ci, |i| i.overrides = claims);
    }

    /// A signed ID token of `ci` for `audience`, with the defaults, overrides and `extra` claims.
    pub fn mint(
        &self,
        base_url: &str,
        ci: Ci,
        audience: &str,
        extra: &Map<String, Value>,
    ) -> String {
        let iat = now();
        let mut claims = ci.default_claims();
        let map = claims.as_object_mut().expect("claims are an object");
        map.insert("iss".into(), json!(issuer_url(base_url, ci)));
        map.insert("aud".into(), json!(audience));
        map.insert("iat".into(), json!(iat));
        map.insert("nbf".into(), json!(iat));
        map.insert("exp".into(), json!(iat + ID_TOKEN_LIFETIME));
        map.insert("jti".into(), json!(new_uuid()));
        self.with(ci, |i| {
            for (k, v) in i.overrides.iter().chain(extra) {
                map.insert(k.clone(), v.clone());
            }
            i.key.sign(&Value::Object(map.clone()))
        })
    }

    /// The JWKS of the issuer whose URL is `iss`, if it is one of ours.
    pub fn jwks_for(&self, base_url: &str, iss: &str) -> Option<Value> {
        let ci = Ci::ALL
            .into_iter()
            .find(|c| issuer_url(base_url, *c) == iss)?;
        Some(self.with(ci, |i| rs256::jwks([&i.key])))
    }

    fn jwks(&self, ci: Ci) -> Value {
        self.with(ci, |i| rs256::jwks([&i.key]))
    }
}

pub fn issuer_url(base_url: &str, ci: Ci) -> String {
    format!("{base_url}{}", ci.path())
}

/// What the ready line says about the issuers: URLs, request endpoints and their credentials.
pub fn ready_info(app: &App) -> Value {
    let base = &app.base_url;
    json!({
        "github": {
            "issuer": issuer_url(base, Ci::GitHub),
            "request_url": format!("{base}/github/idtoken?api-version=2.0"),
            "request_token": app.ci.github_request_token,
        },
        "pipelines": {
            "issuer": issuer_url(base, Ci::Pipelines),
            "request_uri": format!(
                "{base}/pipelines/hg-keyvault/ci/_apis/distributedtask/hubs/build/plans/\
                 0a1b2c3d-0000-4000-8000-000000000001/jobs/0a1b2c3d-0000-4000-8000-000000000002/oidctoken"
            ),
            "access_token": app.ci.pipelines_access_token,
            "service_connection_id": SERVICE_CONNECTION_ID,
            "service_connection_name": SERVICE_CONNECTION_NAME,
        },
        "gitlab": {"issuer": issuer_url(base, Ci::GitLab)},
        "audience": ENTRA_AUDIENCE,
    })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    auth.strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
}

fn discovery(app: &App, ci: Ci) -> Resp {
    let iss = issuer_url(&app.base_url, ci);
    json(
        200,
        &json!({
            "issuer": iss,
            "jwks_uri": format!("{iss}{}", ci.jwks_path()),
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid"],
        }),
    )
}

/// Routes under `/github`, `/pipelines` and `/gitlab`; `None` when the path is not an issuer's.
pub fn route(
    app: &App,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
) -> Option<Resp> {
    let ci = Ci::ALL
        .into_iter()
        .find(|c| path.starts_with(&format!("/{}/", c.name())))?;
    let prefix = ci.path();
    let rest = path.strip_prefix(&prefix).unwrap_or("");
    Some(match (method, rest) {
        ("GET", "/.well-known/openid-configuration") => discovery(app, ci),
        ("GET", r) if r == ci.jwks_path() => json(200, &app.ci.jwks(ci)),
        _ if ci == Ci::GitHub && method == "GET" && path == "/github/idtoken" => {
            github_idtoken(app, query, headers)
        }
        ("POST", _) if ci == Ci::Pipelines && path.ends_with("/oidctoken") => {
            pipelines_oidctoken(app, query, headers)
        }
        _ => json(
            404,
            &json!({"message": format!("No OIDC endpoint {method} {path}.")}),
        ),
    })
}

/// `GET <ACTIONS_ID_TOKEN_REQUEST_URL>&audience=...`.
fn github_idtoken(app: &App, query: &str, headers: &HeaderMap) -> Resp {
    if bearer(headers) != Some(app.ci.github_request_token.as_str()) {
        // The runtime's token is a bearer JWT; a wrong one is refused like any Actions API call.
        return json(401, &json!({"message": "Bad credentials"}));
    }
    // Without `audience`, GitHub uses the repository owner's URL.
    let audience = query_get(query, "audience")
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "https://github.com/hg-keyvault".to_string());
    let token = app
        .ci
        .mint(&app.base_url, Ci::GitHub, &audience, &Map::new());
    json(200, &json!({"count": 1, "value": token}))
}

/// `POST <SYSTEM_OIDCREQUESTURI>?api-version=7.1&serviceConnectionId=<id>`.
fn pipelines_oidctoken(app: &App, query: &str, headers: &HeaderMap) -> Resp {
    if bearer(headers) != Some(app.ci.pipelines_access_token.as_str()) {
        return json(
            401,
            &json!({"message": "TF400813: The user '' is not authorized to access this resource."}),
        );
    }
    let connection = query_get(query, "serviceConnectionId").unwrap_or_default();
    if !connection.eq_ignore_ascii_case(SERVICE_CONNECTION_ID) {
        return json(
            404,
            &json!({
                "message": format!("Service connection with id '{connection}' could not be found."),
                "typeKey": "ServiceEndpointNotFoundException",
            }),
        );
    }
    let token = app
        .ci
        .mint(&app.base_url, Ci::Pipelines, ENTRA_AUDIENCE, &Map::new());
    json(200, &json!({"oidcToken": token}))
}
