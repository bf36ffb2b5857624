//! Every credential link, one module each, in chain order. `auto` tries them in this order and
//! uses the first that applies and gets a token:
//! the environment's service principal, a federated token file, the CI's own OIDC token
//! (GitHub/Forgejo Actions, Azure Pipelines, GitLab/Heptapod), the host's managed identity
//! (Service Fabric is refused, App Service/Container Apps, Azure Arc, Cloud Shell/Azure ML,
//! Azure VM), then the Azure CLI.

mod app_service;
mod azure_arc;
mod azure_cli;
mod azure_pipelines;
mod azure_vm;
mod environment;
mod github_actions;
mod gitlab_ci;
mod msi_endpoint;
mod service_fabric;
mod workload_identity;

use super::link::Link;

/// The links, in chain order.
pub(crate) static LINKS: &[&dyn Link] = &[
    &environment::Environment,
    &workload_identity::WorkloadIdentity,
    &github_actions::GithubActions,
    &azure_pipelines::AzurePipelines,
    &gitlab_ci::GitlabCi,
    &service_fabric::ServiceFabric,
    &app_service::AppService,
    &azure_arc::AzureArc,
    &msi_endpoint::MsiEndpoint,
    &azure_vm::AzureVm,
    &azure_cli::AzureCli,
];
