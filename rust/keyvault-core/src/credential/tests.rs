//! Planning, reasons and refusals: what `auto` and each pinned choice decide from a snapshot.

use super::*;
use crate::config::CredentialChoice;
use crate::error::ErrorKind;
use azure_core::http::ClientOptions;

fn env(pairs: &[(&str, &str)]) -> CredentialEnv {
    CredentialEnv::from_pairs(pairs.iter().copied())
}

/// `(id, "use: ..." | "skip: ..." | "unsupported: ..." | "refused: ...")` per planned link.
fn kinds(choice: CredentialChoice, e: &CredentialEnv) -> Vec<(&'static str, String)> {
    plan(choice, e)
        .into_iter()
        .map(|p| {
            let what = match p.plan {
                LinkPlan::Use(w) => format!("use: {w}"),
                LinkPlan::Skip(w) => format!("skip: {w}"),
                LinkPlan::Unsupported(w) => format!("unsupported: {w}"),
                LinkPlan::Refused(w) => format!("refused: {w}"),
            };
            (p.id, what)
        })
        .collect()
}

fn of(choice: CredentialChoice, e: &CredentialEnv, id: &str) -> String {
    kinds(choice, e)
        .into_iter()
        .find(|k| k.0 == id)
        .unwrap_or_else(|| panic!("{id} not planned"))
        .1
}

fn used(e: &CredentialEnv) -> Vec<&'static str> {
    kinds(CredentialChoice::Auto, e)
        .into_iter()
        .filter(|k| k.1.starts_with("use:"))
        .map(|k| k.0)
        .collect()
}

const ALL_IDS: [&str; 11] = [
    "environment",
    "workload-identity",
    "github-actions",
    "azure-pipelines",
    "gitlab-ci",
    "service-fabric",
    "app-service",
    "azure-arc",
    "msi-endpoint",
    "azure-vm",
    "azure-cli",
];

#[test]
fn an_empty_environment_skips_every_link_in_order_with_one_reason_each() {
    let plan = kinds(CredentialChoice::Auto, &CredentialEnv::default());
    assert_eq!(plan.iter().map(|p| p.0).collect::<Vec<_>>(), ALL_IDS);
    assert!(plan.iter().all(|p| p.1.starts_with("skip:")), "{plan:?}");
    assert!(plan.iter().all(|p| !p.1.contains('\n')), "{plan:?}");
    assert!(plan[0]
        .1
        .contains("AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET are not set"));
    assert!(plan[2].1.contains("id-token: write"), "{}", plan[2].1);
    assert_eq!(plan[4].1, "skip: keyvault.id-token-env is not set");
    assert!(plan[9].1.contains("not an Azure VM"), "{}", plan[9].1);
    assert!(plan[9].1.contains("IMDS is not asked"), "{}", plan[9].1);
    assert_eq!(plan[10].1, "skip: az is not on PATH");
}

#[test]
fn imds_is_used_by_auto_only_with_the_azure_asset_tag() {
    let mut e = CredentialEnv::default();
    e.set_chassis_asset_tag(Some("Default string"));
    assert!(of(CredentialChoice::Auto, &e, "azure-vm").starts_with("skip:"));
    e.set_chassis_asset_tag(Some(AZURE_CHASSIS_ASSET_TAG));
    assert_eq!(
        of(CredentialChoice::Auto, &e, "azure-vm"),
        "use: managed identity (Azure VM: SMBIOS asset tag)"
    );
    // Pinned, it is used without evidence (the user says so), as before.
    assert_eq!(
        kinds(CredentialChoice::ManagedIdentity, &CredentialEnv::default())
            .last()
            .unwrap(),
        &(
            "azure-vm",
            "use: managed identity (Azure VM: keyvault.credential = managed-identity)".to_owned()
        )
    );
    // Another endpoint serves the identity: IMDS is not used even on a VM.
    e.set("MSI_ENDPOINT", "http://localhost:50342/oauth2/token");
    assert!(of(CredentialChoice::Auto, &e, "azure-vm").contains("MSI_ENDPOINT is set"));
}

#[test]
fn environment_link_needs_tenant_client_and_secret() {
    let e = env(&[
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_CLIENT_ID", "c"),
        ("AZURE_CLIENT_SECRET", "s"),
    ]);
    assert_eq!(used(&e), ["environment"]);
    let e = env(&[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")]);
    assert_eq!(
        of(CredentialChoice::Auto, &e, "environment"),
        "skip: AZURE_CLIENT_SECRET is not set"
    );
    let e = env(&[
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_CLIENT_ID", "c"),
        ("AZURE_CLIENT_SECRET", ""),
    ]);
    assert_eq!(
        of(CredentialChoice::Auto, &e, "environment"),
        "skip: AZURE_CLIENT_SECRET is not set"
    );
}

#[test]
fn certificate_is_reported_unsupported() {
    let e = env(&[
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_CLIENT_ID", "c"),
        ("AZURE_CLIENT_CERTIFICATE_PATH", "/x.pem"),
    ]);
    let p = of(CredentialChoice::Auto, &e, "environment");
    assert!(
        p.starts_with("unsupported: AZURE_CLIENT_CERTIFICATE_PATH"),
        "{p}"
    );
    assert!(p.contains("OpenSSL"));
}

#[test]
fn workload_identity_needs_token_file_tenant_and_client() {
    let e = env(&[
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_CLIENT_ID", "c"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
    ]);
    assert_eq!(used(&e), ["workload-identity"]);
    let e = env(&[("AZURE_FEDERATED_TOKEN_FILE", "/f")]);
    assert_eq!(
        of(CredentialChoice::Auto, &e, "workload-identity"),
        "skip: AZURE_TENANT_ID, AZURE_CLIENT_ID are not set"
    );
}

#[test]
fn github_and_forgejo_actions_need_the_token_request_and_the_app_ids() {
    let request = [
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "https://pipelines.actions.githubusercontent.com/abc/idtoken?api-version=2.0",
        ),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "req-token"),
    ];
    let mut e = env(&request);
    let p = of(CredentialChoice::Auto, &e, "github-actions");
    assert!(
        p.starts_with("skip: AZURE_TENANT_ID, AZURE_CLIENT_ID are not set"),
        "{p}"
    );
    e.set("AZURE_TENANT_ID", "t");
    e.set("AZURE_CLIENT_ID", "c");
    assert_eq!(used(&e), ["github-actions"]);
    assert_eq!(
        of(CredentialChoice::Auto, &e, "github-actions"),
        "use: GitHub Actions OIDC"
    );
    e.set("FORGEJO_ACTIONS", "true");
    assert_eq!(
        of(CredentialChoice::Auto, &e, "github-actions"),
        "use: Forgejo Actions OIDC"
    );
    // The request token must not go to another host in clear.
    e.set(
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "http://forgejo.lan/api/actions/idtoken",
    );
    assert!(of(CredentialChoice::Auto, &e, "github-actions").starts_with("refused: "));
    // A workflow without `id-token: write` has no request URL.
    let e = env(&[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")]);
    assert!(of(CredentialChoice::Auto, &e, "github-actions").contains("id-token: write"));
}

#[test]
fn azure_pipelines_needs_the_oidc_uri_access_token_and_service_connection() {
    let mut e = env(&[
        ("SYSTEM_OIDCREQUESTURI", "https://dev.azure.com/org/proj/_apis/distributedtask/hubs/build/plans/p/jobs/j/oidctoken"),
        ("SYSTEM_ACCESSTOKEN", "ado"),
    ]);
    let p = of(CredentialChoice::Auto, &e, "azure-pipelines");
    assert!(
        p.contains("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID is not set"),
        "{p}"
    );
    e.set("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "sc");
    assert!(of(CredentialChoice::Auto, &e, "azure-pipelines").contains("neither"));
    e.set("AZURESUBSCRIPTION_CLIENT_ID", "c");
    e.set("AZURESUBSCRIPTION_TENANT_ID", "t");
    assert_eq!(used(&e), ["azure-pipelines"]);
}

#[test]
fn gitlab_id_tokens_come_from_the_variable_the_config_names() {
    let mut e = env(&[
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_CLIENT_ID", "c"),
        ("AZURE_ID_TOKEN", "eyJ.x.y"),
    ]);
    assert!(used(&e).is_empty());
    e.set_id_token_variable(Some("HG_ID_TOKEN"));
    assert!(of(CredentialChoice::Auto, &e, "gitlab-ci").contains("HG_ID_TOKEN is not set"));
    e.set_id_token_variable(Some("AZURE_ID_TOKEN"));
    assert_eq!(
        of(CredentialChoice::Auto, &e, "gitlab-ci"),
        "use: GitLab CI id_token (AZURE_ID_TOKEN)"
    );
    e.set("CI_SERVER_NAME", "Heptapod");
    assert_eq!(
        of(CredentialChoice::Auto, &e, "gitlab-ci"),
        "use: Heptapod CI id_token (AZURE_ID_TOKEN)"
    );
}

#[test]
fn service_fabric_is_refused_and_never_takes_the_app_service_path() {
    let e = env(&[
        (
            "IDENTITY_ENDPOINT",
            "https://localhost:2377/metadata/identity/oauth2/token",
        ),
        ("IDENTITY_HEADER", "h"),
        ("IDENTITY_SERVER_THUMBPRINT", "AB12"),
    ]);
    let p = kinds(CredentialChoice::Auto, &e);
    let sf = of(CredentialChoice::Auto, &e, "service-fabric");
    assert!(
        sf.starts_with("unsupported: IDENTITY_SERVER_THUMBPRINT is set"),
        "{sf}"
    );
    assert!(
        of(CredentialChoice::Auto, &e, "app-service").starts_with("skip:"),
        "{p:?}"
    );
    assert!(used(&e).is_empty(), "{p:?}");
}

#[test]
fn app_service_accepts_plain_http_only_for_loopback() {
    let mut e = env(&[
        ("IDENTITY_ENDPOINT", "http://localhost:8081/msi/token"),
        ("IDENTITY_HEADER", "h"),
    ]);
    assert_eq!(used(&e), ["app-service"]);
    e.set("IDENTITY_ENDPOINT", "http://10.1.2.3:8081/msi/token");
    let p = of(CredentialChoice::Auto, &e, "app-service");
    assert!(p.starts_with("refused: IDENTITY_ENDPOINT"), "{p}");
    assert!(p.contains("plain http"), "{p}");
    let e = env(&[("IDENTITY_ENDPOINT", "https://h/msi/token")]);
    assert!(of(CredentialChoice::Auto, &e, "app-service").contains("IDENTITY_HEADER is not set"));
}

#[test]
fn azure_arc_is_identity_endpoint_and_imds_endpoint_without_a_header() {
    let mut e = env(&[
        (
            "IDENTITY_ENDPOINT",
            "http://localhost:40342/metadata/identity/oauth2/token",
        ),
        ("IMDS_ENDPOINT", "http://localhost:40342"),
    ]);
    assert_eq!(used(&e), ["azure-arc"]);
    assert_eq!(
        of(CredentialChoice::Auto, &e, "azure-arc"),
        "use: managed identity (Azure Arc: IMDS_ENDPOINT)"
    );
    assert!(of(CredentialChoice::Auto, &e, "azure-vm").contains("IDENTITY_ENDPOINT is set"));
    e.set("AZURE_CLIENT_ID", "c");
    assert!(of(CredentialChoice::Auto, &e, "azure-arc").starts_with("refused: AZURE_CLIENT_ID"));
    e.set("AZURE_CLIENT_ID", "");
    e.set("IDENTITY_HEADER", "h");
    assert_eq!(used(&e), ["app-service"]);
}

#[test]
fn cloud_shell_and_azure_ml_use_msi_endpoint() {
    let mut e = env(&[("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")]);
    assert_eq!(
        of(CredentialChoice::Auto, &e, "msi-endpoint"),
        "use: managed identity (Cloud Shell: MSI_ENDPOINT)"
    );
    e.set("MSI_SECRET", "s");
    assert_eq!(
        of(CredentialChoice::Auto, &e, "msi-endpoint"),
        "use: managed identity (Azure Machine Learning: MSI_ENDPOINT, MSI_SECRET)"
    );
    e.set("MSI_ENDPOINT", "http://192.168.0.1/token");
    assert!(of(CredentialChoice::Auto, &e, "msi-endpoint").starts_with("refused:"));
}

#[test]
fn azure_cli_is_tried_only_when_az_is_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let az = dir.path().join("az");
    std::fs::write(&az, "#!/bin/sh\n").unwrap();
    let path = format!("/nonexistent:{}", dir.path().display());
    // Not executable yet.
    let e = env(&[("PATH", path.as_str())]);
    assert_eq!(
        of(CredentialChoice::Auto, &e, "azure-cli"),
        "skip: az is not on PATH"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            of(CredentialChoice::Auto, &e, "azure-cli"),
            format!("use: Azure CLI ({})", az.display())
        );
    }
}

#[test]
fn a_pinned_choice_plans_only_its_group() {
    let e = CredentialEnv::default();
    let ids = |c| kinds(c, &e).into_iter().map(|k| k.0).collect::<Vec<_>>();
    assert_eq!(ids(CredentialChoice::Environment), ["environment"]);
    assert_eq!(
        ids(CredentialChoice::WorkloadIdentity),
        ["workload-identity"]
    );
    assert_eq!(
        ids(CredentialChoice::CiOidc),
        ["github-actions", "azure-pipelines", "gitlab-ci"]
    );
    assert_eq!(
        ids(CredentialChoice::ManagedIdentity),
        [
            "service-fabric",
            "app-service",
            "azure-arc",
            "msi-endpoint",
            "azure-vm"
        ]
    );
    assert_eq!(ids(CredentialChoice::AzureCli), ["azure-cli"]);
    for p in plan(CredentialChoice::ManagedIdentity, &e) {
        assert_eq!(p.link, CredentialChoice::ManagedIdentity);
    }
}

#[tokio::test]
async fn chain_with_nothing_configured_lists_every_link_and_probes_nothing() {
    // No transport at all: any request would fail the test with a connection error line.
    let chain = CredentialChain::new(
        CredentialChoice::Auto,
        &CredentialEnv::default(),
        &ClientOptions::default(),
    )
    .unwrap();
    let err = chain
        .try_links(&["https://vault.azure.net/.default"], None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    let lines: Vec<&str> = err.message().lines().collect();
    assert_eq!(lines[0], "no Azure credential could get a token; tried:");
    assert_eq!(lines.len(), 1 + ALL_IDS.len());
    for (line, id) in lines[1..].iter().zip(ALL_IDS) {
        assert!(line.starts_with(&format!("  {id}: skipped: ")), "{line}");
    }
    assert!(err.hint().unwrap().contains("az login"));
    assert!(err.hint().unwrap().contains("id-token: write"));
}

#[tokio::test]
async fn a_refused_link_is_reported_with_its_hint() {
    let e = env(&[
        ("IDENTITY_ENDPOINT", "http://10.0.0.1/msi/token"),
        ("IDENTITY_HEADER", "header-distinctive"),
    ]);
    let chain =
        CredentialChain::new(CredentialChoice::Auto, &e, &ClientOptions::default()).unwrap();
    let err = chain.try_links(&["s/.default"], None).await.unwrap_err();
    assert!(
        err.message().contains(
            "  app-service: refused: IDENTITY_ENDPOINT http://10.0.0.1/msi/token uses plain http"
        ),
        "{}",
        err.message()
    );
    assert!(
        err.hint().unwrap().contains("managed identity"),
        "{:?}",
        err.hint()
    );
    assert!(!format!("{err:?}").contains("header-distinctive"));
}

#[tokio::test]
async fn unreadable_token_file_is_a_failed_attempt() {
    let e = env(&[
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_CLIENT_ID", "c"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/token"),
    ]);
    let chain = CredentialChain::new(
        CredentialChoice::WorkloadIdentity,
        &e,
        &ClientOptions::default(),
    )
    .unwrap();
    let err = chain.try_links(&["s/.default"], None).await.unwrap_err();
    assert!(
        err.message().contains(
            "workload-identity: failed: cannot read AZURE_FEDERATED_TOKEN_FILE /nonexistent/token"
        ),
        "{}",
        err.message()
    );
    assert!(err.hint().unwrap().contains("AZURE_FEDERATED_TOKEN_FILE"));
}
