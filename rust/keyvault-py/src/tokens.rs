//! `TokenSession`: Entra access tokens for `[auth]` groups with `entra-scope` (the job's
//! identity is the credential of a server behind an identity-aware proxy). Thin: the core's
//! [`hg_keyvault_core::TokenSession`] does the work, without the GIL.

use crate::convert;
use crate::exceptions::to_pyerr;
use hg_keyvault_core::config::CredentialChoice;
use hg_keyvault_core::secret::SecretValue;
use hg_keyvault_core::token_session::{ScopedToken, TokenConfig};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::time::Duration;

#[pyclass(frozen, module = "hgext3rd.keyvault._native")]
pub struct TokenSession {
    session: hg_keyvault_core::TokenSession,
}

fn epoch(t: time::OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

/// What Python shows of a token: never the token itself.
fn info<'py>(py: Python<'py>, t: &ScopedToken) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("expires_on", epoch(t.expires_on))?;
    d.set_item("fresh_until", epoch(t.fresh_until))?;
    d.set_item("source", if t.from_cache { "cache" } else { "entra" })?;
    d.set_item("tenant_id", &t.claims.tenant_id)?;
    d.set_item("client_id", &t.claims.client_id)?;
    d.set_item("object_id", &t.claims.object_id)?;
    d.set_item("aud", &t.claims.audience)?;
    d.set_item("iss", &t.claims.issuer)?;
    d.set_item("version", t.claims.version())?;
    match &t.identity {
        Some(i) => d.set_item("identity", convert::identity(py, &i.clone().into())?)?,
        None => d.set_item("identity", py.None())?,
    }
    Ok(d)
}

#[pymethods]
impl TokenSession {
    #[new]
    #[pyo3(signature = (*, credential="auto", cacerts=None, timeout=10.0, user_agent=None,
                        token_cache=true, id_token_env=None))]
    fn new(
        py: Python<'_>,
        credential: &str,
        cacerts: Option<PathBuf>,
        timeout: f64,
        user_agent: Option<String>,
        token_cache: bool,
        id_token_env: Option<String>,
    ) -> PyResult<Self> {
        let err = |e| to_pyerr(py, e);
        let config = TokenConfig {
            credential: credential.parse::<CredentialChoice>().map_err(err)?,
            extra_roots_pem: cacerts,
            timeout: Duration::try_from_secs_f64(timeout).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(
                    "timeout must be a positive number of seconds",
                )
            })?,
            user_agent_suffix: user_agent,
            token_cache,
            id_token_env,
        };
        let session = py
            .detach(|| hg_keyvault_core::TokenSession::new(&config))
            .map_err(err)?;
        Ok(Self { session })
    }

    /// `(token, info)` for `scope`: the token text (for the Authorization header only) and a
    /// dict of what may be shown (claims, expiry, `source` = cache or entra).
    fn token<'py>(&self, py: Python<'py>, scope: &str) -> PyResult<(String, Bound<'py, PyDict>)> {
        let t = py
            .detach(|| self.session.token(scope))
            .map_err(|e| to_pyerr(py, e))?;
        let text = String::from_utf8_lossy(t.token.expose()).into_owned();
        Ok((text, info(py, &t)?))
    }

    /// The server refused `token` (401): drop it from the cache of `scope`.
    fn forget(&self, py: Python<'_>, scope: &str, token: &str) -> PyResult<()> {
        let token = SecretValue::from(token);
        py.detach(|| self.session.forget(scope, &token))
            .map_err(|e| to_pyerr(py, e))
    }
}
