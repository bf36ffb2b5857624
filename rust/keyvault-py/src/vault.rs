//! `Vault`: a blocking session on one Azure Key Vault. Every method that may touch the network
//! releases the GIL (`py.detach`) so other Python threads keep running.

use crate::convert;
use crate::exceptions::to_pyerr;
use hg_keyvault_core::azure::SetOptions;
use hg_keyvault_core::blocking::Session;
use hg_keyvault_core::config::{CredentialChoice, VaultConfig};
use hg_keyvault_core::name::NamePrefix;
use hg_keyvault_core::secret::SecretValue;
use hg_keyvault_core::secret_ref::SecretRef;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[pyclass(frozen, module = "hgext3rd.keyvault._native")]
pub struct Vault {
    session: Session,
}

fn parse_ref(py: Python<'_>, text: &str) -> PyResult<SecretRef> {
    SecretRef::parse(text).map_err(|e| to_pyerr(py, e))
}

#[pymethods]
impl Vault {
    #[new]
    // The keyword arguments of the Python constructor, one per [keyvault] option.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (url, *, credential="auto", cacerts=None, verify_challenge_resource=true,
                        timeout=10.0, name_prefix="hg-", user_agent=None, token_cache=true,
                        secret_cache=0.0))]
    fn new(
        py: Python<'_>,
        url: &str,
        credential: &str,
        cacerts: Option<PathBuf>,
        verify_challenge_resource: bool,
        timeout: f64,
        name_prefix: &str,
        user_agent: Option<String>,
        token_cache: bool,
        secret_cache: f64,
    ) -> PyResult<Self> {
        let err = |e| to_pyerr(py, e);
        let mut config = VaultConfig::new(url).map_err(err)?;
        config.credential = credential.parse::<CredentialChoice>().map_err(err)?;
        config.extra_roots_pem = cacerts;
        config.verify_challenge_resource = verify_challenge_resource;
        config.timeout = Duration::try_from_secs_f64(timeout).map_err(|_| {
            pyo3::exceptions::PyValueError::new_err("timeout must be a positive number of seconds")
        })?;
        config.name_prefix = NamePrefix::parse(name_prefix).map_err(err)?;
        config.user_agent_suffix = user_agent;
        config.token_cache = token_cache;
        config.secret_cache_ttl = (secret_cache > 0.0)
            .then(|| Duration::try_from_secs_f64(secret_cache))
            .transpose()
            .map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(
                    "secret_cache must be a number of seconds (0 = off)",
                )
            })?;
        let session = py.detach(|| Session::new(&config)).map_err(err)?;
        Ok(Vault { session })
    }

    /// `(value, properties)` of the current version, or of `version`; from the secret cache
    /// when it is on and holds it (properties `source` and `cached_for` say so).
    #[pyo3(signature = (secret_ref, version=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        secret_ref: &str,
        version: Option<&str>,
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyDict>)> {
        let r = parse_ref(py, secret_ref)?;
        let (secret, source) = py
            .detach(|| self.session.read(&r, version))
            .map_err(|e| to_pyerr(py, e))?;
        let value = PyBytes::new(py, secret.value.expose());
        let props = convert::properties(py, &secret.properties)?;
        convert::value_source(&props, source)?;
        Ok((value, props))
    }

    /// `check` of many refs, several at a time (bounded): per ref, its properties or the
    /// exception that reading it raised, in the order given.
    fn check_many<'py>(
        &self,
        py: Python<'py>,
        secret_refs: Vec<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        let parsed: Vec<Result<SecretRef, hg_keyvault_core::Error>> =
            secret_refs.iter().map(|t| SecretRef::parse(t)).collect();
        let valid: Vec<SecretRef> = parsed.iter().filter_map(|r| r.clone().ok()).collect();
        let mut fetched = py
            .detach(|| self.session.get_many(&valid))
            .map_err(|e| to_pyerr(py, e))?
            .into_iter();
        let items = parsed
            .into_iter()
            .map(|p| {
                let outcome = match p {
                    Ok(_) => fetched.next().expect("one result per valid ref"),
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(secret) => Ok(convert::properties(py, &secret.properties)?.into_any()),
                    Err(e) => Ok(to_pyerr(py, e).into_value(py).into_bound(py).into_any()),
                }
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// The caches: `token_cache` (`kernel-keyring`, `process` or None when off),
    /// `token_source` (`cache`, `fetched` or None), `token_fresh_until` (epoch),
    /// `secret_cache_ttl` (seconds or None), `secret_cache_unavailable`.
    fn cache_status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let status = self.session.cache_status().map_err(|e| to_pyerr(py, e))?;
        convert::cache_status(py, &status)
    }

    /// Seconds the secret cache keeps the current value of `secret_ref`, or None.
    fn cached_for(&self, py: Python<'_>, secret_ref: &str) -> PyResult<Option<f64>> {
        let r = parse_ref(py, secret_ref)?;
        let left = self.session.cached_for(&r).map_err(|e| to_pyerr(py, e))?;
        Ok(left.map(|d| d.as_secs_f64()))
    }

    /// Drops the secret cache's copy of `secret_ref` (the server rejected it, or it rotated).
    fn forget_cached(&self, py: Python<'_>, secret_ref: &str) -> PyResult<()> {
        let r = parse_ref(py, secret_ref)?;
        self.session.forget_cached(&r).map_err(|e| to_pyerr(py, e))
    }

    /// Reads the current value (proving it is readable) and returns only its properties: the
    /// value is dropped, zeroized, on the Rust side and never reaches Python.
    fn check<'py>(&self, py: Python<'py>, secret_ref: &str) -> PyResult<Bound<'py, PyDict>> {
        let r = parse_ref(py, secret_ref)?;
        let secret = py
            .detach(|| self.session.get(&r, None))
            .map_err(|e| to_pyerr(py, e))?;
        convert::properties(py, &secret.properties)
    }

    /// Stores `value` as a new version of `secret_ref`; returns the new version's properties.
    #[pyo3(signature = (secret_ref, value, *, expires=None, tags=None))]
    fn set<'py>(
        &self,
        py: Python<'py>,
        secret_ref: &str,
        value: &[u8],
        expires: Option<f64>,
        tags: Option<BTreeMap<String, String>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let r = parse_ref(py, secret_ref)?;
        let value = SecretValue::from(value);
        let options = SetOptions {
            expires: convert::epoch_to_time(expires)?,
            tags: convert::tags(tags),
        };
        let props = py
            .detach(|| self.session.set(&r, &value, options))
            .map_err(|e| to_pyerr(py, e))?;
        convert::properties(py, &props)
    }

    /// Properties of the current version.
    fn properties<'py>(&self, py: Python<'py>, secret_ref: &str) -> PyResult<Bound<'py, PyDict>> {
        let r = parse_ref(py, secret_ref)?;
        let props = py
            .detach(|| self.session.properties(&r))
            .map_err(|e| to_pyerr(py, e))?;
        convert::properties(py, &props)
    }

    /// Properties of every version of `secret_ref`, oldest first.
    fn versions<'py>(&self, py: Python<'py>, secret_ref: &str) -> PyResult<Bound<'py, PyList>> {
        let r = parse_ref(py, secret_ref)?;
        let all = py
            .detach(|| self.session.versions(&r))
            .map_err(|e| to_pyerr(py, e))?;
        let items = all
            .iter()
            .map(|p| convert::properties(py, p))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// One authenticated round trip that touches no value: raises if the vault does not answer
    /// or does not let this identity read it.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.session.ping())
            .map_err(|e| to_pyerr(py, e))
    }

    /// Properties of every secret in the vault (all pages).
    fn list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let all = py
            .detach(|| self.session.list())
            .map_err(|e| to_pyerr(py, e))?;
        let items = all
            .iter()
            .map(|p| convert::properties(py, p))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// The identity the vault sees (`link`, `tenant_id`, `client_id`, `object_id`); gets a token
    /// first if none was obtained yet.
    fn identity<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let identity = py
            .detach(|| self.session.identity())
            .map_err(|e| to_pyerr(py, e))?;
        convert::identity(py, &identity)
    }

    /// The credential link that got a token in this process, if any did.
    fn selected_link(&self) -> Option<&'static str> {
        self.session.selected_link().map(CredentialChoice::as_str)
    }

    #[getter]
    fn url(&self) -> String {
        self.session.config().vault_url.to_string()
    }

    fn __repr__(&self) -> String {
        format!("<Vault {}>", self.session.config().vault_url)
    }
}
