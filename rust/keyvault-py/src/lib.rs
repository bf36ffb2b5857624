//! `hgext3rd.keyvault._native`: a thin PyO3 layer over `hg_keyvault_core`. It converts types,
//! maps errors (all in `exceptions.rs`) and releases the GIL around blocking work. No logic.

mod convert;
mod exceptions;
mod tokens;
mod vault;

use exceptions::to_pyerr;
use hg_keyvault_core::name::{self, NamePrefix};
use hg_keyvault_core::origin::{self, GroupPrefix};
use hg_keyvault_core::secret_ref::SecretRef;
use pyo3::prelude::*;

/// The canonical text of a secret reference; raises `BadRefError` saying why it is not valid.
#[pyfunction]
fn parse_ref(py: Python<'_>, text: &str) -> PyResult<String> {
    SecretRef::parse(text)
        .map(|r| r.as_str().to_string())
        .map_err(|e| to_pyerr(py, e))
}

/// The Key Vault secret name that `secret_ref` is stored under.
#[pyfunction]
#[pyo3(signature = (secret_ref, prefix="hg-"))]
fn secret_name(py: Python<'_>, secret_ref: &str, prefix: &str) -> PyResult<String> {
    let r = SecretRef::parse(secret_ref).map_err(|e| to_pyerr(py, e))?;
    let prefix = NamePrefix::parse(prefix).map_err(|e| to_pyerr(py, e))?;
    Ok(name::secret_name(&r, &prefix))
}

/// The providers of the core's table, in order: `(name, [needed option, ...])`.
#[pyfunction]
fn providers() -> Vec<(&'static str, Vec<&'static str>)> {
    hg_keyvault_core::providers::PROVIDERS
        .iter()
        .map(|p| (p.provider.as_str(), p.needs.iter().map(|n| n.key).collect()))
        .collect()
}

/// Raises the provider's own `ConfigError` (a sentence naming the key, and a hint) for the
/// first option `provider` needs that is not among `set_options`.
#[pyfunction]
fn check_needs(py: Python<'_>, provider: &str, set_options: Vec<String>) -> PyResult<()> {
    hg_keyvault_core::providers::check_needs(provider, |key| set_options.iter().any(|s| s == key))
        .map_err(|e| to_pyerr(py, e))
}

/// The CI job running this process (`{"system": ..., "id": ..., "describe": "system:id"}`), or
/// None outside CI.
#[pyfunction]
fn ci_job(py: Python<'_>) -> PyResult<Option<Bound<'_, pyo3::types::PyDict>>> {
    let Some(job) = hg_keyvault_core::ci_job::from_process() else {
        return Ok(None);
    };
    let d = pyo3::types::PyDict::new(py);
    d.set_item("system", job.system)?;
    d.set_item("id", &job.id)?;
    d.set_item("describe", job.describe())?;
    Ok(Some(d))
}

/// The index of the `(prefix, schemes, username)` group that covers `url` most specifically, or
/// None. Matching is on scheme, host, port and path segments; wildcards never match.
/// An `[auth]` group as Python passes it: `(prefix, schemes, username)`.
type AuthGroupTuple = (String, Vec<String>, Option<String>);

#[pyfunction]
#[pyo3(signature = (url, groups, user=None))]
fn match_auth_group(
    py: Python<'_>,
    url: &str,
    groups: Vec<AuthGroupTuple>,
    user: Option<&str>,
) -> PyResult<Option<usize>> {
    let prefixes = group_prefixes(&groups);
    origin::best_match(url, &prefixes, user).map_err(|e| to_pyerr(py, e))
}

/// For each `(prefix, schemes, username)` group: `(covers, reason)` for `url`, judged as
/// `match_auth_group` judges.
#[pyfunction]
#[pyo3(signature = (url, groups, user=None))]
fn explain_auth_groups(
    py: Python<'_>,
    url: &str,
    groups: Vec<AuthGroupTuple>,
    user: Option<&str>,
) -> PyResult<Vec<(bool, String)>> {
    let prefixes = group_prefixes(&groups);
    origin::explain(url, &prefixes, user)
        .map(|all| all.into_iter().map(|v| (v.covers, v.reason)).collect())
        .map_err(|e| to_pyerr(py, e))
}

/// The `(prefix, schemes, username)` tuples Python passes, as the core's matcher takes them.
fn group_prefixes(groups: &[AuthGroupTuple]) -> Vec<GroupPrefix<'_>> {
    groups
        .iter()
        .map(|(prefix, schemes, username)| GroupPrefix {
            prefix,
            schemes,
            username: username.as_deref(),
        })
        .collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    exceptions::register(m)?;
    m.add_class::<vault::Vault>()?;
    m.add_class::<tokens::TokenSession>()?;
    m.add_function(wrap_pyfunction!(parse_ref, m)?)?;
    m.add_function(wrap_pyfunction!(secret_name, m)?)?;
    m.add_function(wrap_pyfunction!(ci_job, m)?)?;
    m.add_function(wrap_pyfunction!(providers, m)?)?;
    m.add_function(wrap_pyfunction!(check_needs, m)?)?;
    m.add_function(wrap_pyfunction!(match_auth_group, m)?)?;
    m.add_function(wrap_pyfunction!(explain_auth_groups, m)?)?;
    Ok(())
}
