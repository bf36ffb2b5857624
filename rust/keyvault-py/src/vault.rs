//! `Vault`: a blocking session on one secret store of any provider (`Vault.open(provider,
//! ...)`; `Vault(url, ...)` and `Vault.keyring(...)` are its Azure and keyring shorthands), with
//! the same methods. Every method that may block releases the GIL (`py.detach`) so other Python
//! threads keep running.
//!
//! Methods that reach the store report the `x-ms-client-request-id` of the vault request they
//! sent: as `request_id` in the returned dict, or as the exception's `request_id` attribute.

use crate::convert;
use crate::exceptions::{to_pyerr, to_pyerr_traced};
use hg_keyvault_core::providers::{self, StoreOptions};
use hg_keyvault_core::secret::SecretValue;
use hg_keyvault_core::secret_ref::SecretRef;
use hg_keyvault_core::store::{self, SecretStore, SetOptions};
use hg_keyvault_core::Result;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One store of whichever provider; every method below goes through the [`SecretStore`] trait,
/// so no method branches on the provider (the core's provider table opens them; only the two
/// shorthand constructors name one).
#[pyclass(frozen, module = "hgext3rd.keyvault._native")]
pub struct Vault {
    store: Box<dyn SecretStore>,
    /// How long before its expiry a secret's state is `expiring soon` (`keyvault.expiry-warning`).
    expiry_warning: time::Duration,
}

fn parse_ref(py: Python<'_>, text: &str) -> PyResult<SecretRef> {
    SecretRef::parse(text).map_err(|e| to_pyerr(py, e))
}

fn warning_of(days: f64) -> PyResult<time::Duration> {
    (days >= 0.0)
        .then(|| time::Duration::checked_seconds_f64(days * 86400.0))
        .flatten()
        .ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err("expiry_warning must be a number of days")
        })
}

fn timeout_of(seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err("timeout must be a positive number of seconds")
    })
}

/// Runs one store operation without the GIL; returns its result and the vault request id.
fn traced<T: Send>(
    py: Python<'_>,
    op: impl FnOnce() -> Result<T> + Send,
) -> (Result<T>, Option<String>) {
    py.detach(|| {
        store::clear_last_request_id();
        let result = op();
        (result, store::last_request_id())
    })
}

/// The value of a traced operation, or its exception carrying the request id.
fn unwrap_traced<T>(
    py: Python<'_>,
    (result, id): (Result<T>, Option<String>),
) -> PyResult<(T, Option<String>)> {
    match result {
        Ok(value) => Ok((value, id)),
        Err(e) => Err(to_pyerr_traced(py, e, id)),
    }
}

impl Vault {
    fn store(&self) -> &dyn SecretStore {
        self.store.as_ref()
    }

    /// Opens `provider`'s store through the core's provider table, without the GIL.
    fn open_with(
        py: Python<'_>,
        provider: &str,
        options: StoreOptions,
        expiry_warning: f64,
    ) -> PyResult<Self> {
        let expiry_warning = warning_of(expiry_warning)?;
        let store = py
            .detach(|| providers::open_store(provider, &options))
            .map_err(|e| to_pyerr(py, e))?;
        Ok(Vault {
            store,
            expiry_warning,
        })
    }
}

fn secret_cache_of(seconds: f64) -> PyResult<Option<Duration>> {
    (seconds > 0.0)
        .then(|| Duration::try_from_secs_f64(seconds))
        .transpose()
        .map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(
                "secret_cache must be a number of seconds (0 = off)",
            )
        })
}

#[pymethods]
impl Vault {
    /// A session on the Azure Key Vault at `url` (the same as `Vault.open("azure", url=url, ...)`).
    #[new]
    // The keyword arguments of the Python constructor, one per [keyvault] option.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (url, *, credential="auto", cacerts=None, verify_challenge_resource=true,
                        timeout=10.0, name_prefix="hg-", user_agent=None, token_cache=true,
                        secret_cache=0.0, expiry_warning=14.0, id_token_env=None))]
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
        expiry_warning: f64,
        id_token_env: Option<String>,
    ) -> PyResult<Self> {
        Self::open(
            py,
            "azure",
            Some(url.to_owned()),
            credential,
            cacerts,
            verify_challenge_resource,
            timeout,
            name_prefix,
            user_agent,
            token_cache,
            secret_cache,
            expiry_warning,
            id_token_env,
            "auto",
            None,
            None,
        )
    }

    /// A session on the OS keyring (`keyring`: auto, secret-service, keyutils, macos-keychain,
    /// windows-credential-manager); the same as `Vault.open("keyring", keyring=keyring, ...)`.
    #[staticmethod]
    #[pyo3(signature = (*, keyring="auto", timeout=10.0, name_prefix="hg-", expiry_warning=14.0))]
    fn keyring(
        py: Python<'_>,
        keyring: &str,
        timeout: f64,
        name_prefix: &str,
        expiry_warning: f64,
    ) -> PyResult<Self> {
        let options = StoreOptions {
            keyring: keyring.to_owned(),
            timeout: timeout_of(timeout)?,
            name_prefix: name_prefix.to_owned(),
            ..StoreOptions::default()
        };
        Self::open_with(py, "keyring", options, expiry_warning)
    }

    /// A session on `provider`'s store (a name of `providers()`), with every [keyvault] option;
    /// each provider uses those it needs.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (provider, *, url=None, credential="auto", cacerts=None,
                        verify_challenge_resource=true, timeout=10.0, name_prefix="hg-",
                        user_agent=None, token_cache=true, secret_cache=0.0, expiry_warning=14.0,
                        id_token_env=None, keyring="auto", aws_region=None, aws_profile=None))]
    fn open(
        py: Python<'_>,
        provider: &str,
        url: Option<String>,
        credential: &str,
        cacerts: Option<PathBuf>,
        verify_challenge_resource: bool,
        timeout: f64,
        name_prefix: &str,
        user_agent: Option<String>,
        token_cache: bool,
        secret_cache: f64,
        expiry_warning: f64,
        id_token_env: Option<String>,
        keyring: &str,
        aws_region: Option<String>,
        aws_profile: Option<String>,
    ) -> PyResult<Self> {
        let options = StoreOptions {
            url,
            credential: credential.to_owned(),
            cacerts,
            verify_challenge_resource,
            timeout: timeout_of(timeout)?,
            name_prefix: name_prefix.to_owned(),
            user_agent,
            token_cache,
            secret_cache_ttl: secret_cache_of(secret_cache)?,
            id_token_env,
            keyring: keyring.to_owned(),
            aws_region,
            aws_profile,
        };
        Self::open_with(py, provider, options, expiry_warning)
    }

    /// `{"provider", "location", "detail"}`: where the secrets live.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let info = py.detach(|| self.store().info());
        convert::store_info(py, &info)
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
        let ((secret, source), id) =
            unwrap_traced(py, traced(py, || self.store().read(&r, version)))?;
        let value = PyBytes::new(py, secret.value.expose());
        let props = convert::properties(py, &secret.properties, self.expiry_warning)?;
        props.set_item("request_id", id)?;
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
        let parsed: Vec<Result<SecretRef>> =
            secret_refs.iter().map(|t| SecretRef::parse(t)).collect();
        let valid: Vec<SecretRef> = parsed.iter().filter_map(|r| r.clone().ok()).collect();
        let mut fetched = py
            .detach(|| self.store().get_many(&valid))
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
                    Ok(secret) => {
                        Ok(
                            convert::properties(py, &secret.properties, self.expiry_warning)?
                                .into_any(),
                        )
                    }
                    Err(e) => Ok(to_pyerr(py, e).into_value(py).into_bound(py).into_any()),
                }
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// The caches, or None when the store has none (the keyring): `token_cache`
    /// (`kernel-keyring`, `process` or None when off), `token_source` (`cache`, `fetched` or
    /// None), `token_fresh_until` (epoch), `secret_cache_ttl` (seconds or None),
    /// `secret_cache_unavailable`.
    fn cache_status<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let status = self.store().cache_status().map_err(|e| to_pyerr(py, e))?;
        status.map(|s| convert::cache_status(py, &s)).transpose()
    }

    /// Seconds the secret cache keeps the current value of `secret_ref`, or None.
    fn cached_for(&self, py: Python<'_>, secret_ref: &str) -> PyResult<Option<f64>> {
        let r = parse_ref(py, secret_ref)?;
        let left = self.store().cached_for(&r).map_err(|e| to_pyerr(py, e))?;
        Ok(left.map(|d| d.as_secs_f64()))
    }

    /// Drops the secret cache's copy of `secret_ref` (the server rejected it, or it rotated).
    fn forget_cached(&self, py: Python<'_>, secret_ref: &str) -> PyResult<()> {
        let r = parse_ref(py, secret_ref)?;
        self.store().forget_cached(&r).map_err(|e| to_pyerr(py, e))
    }

    /// Reads the current value (proving it is readable) and returns only its properties: the
    /// value is dropped, zeroized, on the Rust side and never reaches Python.
    fn check<'py>(&self, py: Python<'py>, secret_ref: &str) -> PyResult<Bound<'py, PyDict>> {
        let r = parse_ref(py, secret_ref)?;
        let (secret, id) = unwrap_traced(py, traced(py, || self.store().get(&r, None)))?;
        let props = convert::properties(py, &secret.properties, self.expiry_warning)?;
        props.set_item("request_id", id)?;
        Ok(props)
    }

    /// Copies the current value of `secret_ref` from `source` into this store as a new version
    /// (with the source's expiry and tags), unless this store's current value is the same.
    /// The value never reaches Python, nor does its digest. Returns `{"copied": bool,
    /// "source": props, "target": props, "request_id"}` once the target's read-back matched.
    fn copy_from<'py>(
        &self,
        py: Python<'py>,
        source: PyRef<'_, Vault>,
        secret_ref: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let r = parse_ref(py, secret_ref)?;
        let source: &Vault = &source;
        let (outcome, id) = unwrap_traced(
            py,
            traced(py, || store::copy_secret(source.store(), self.store(), &r)),
        )?;
        convert::copy_outcome(py, &outcome, id, self.expiry_warning)
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
        let (props, id) = unwrap_traced(py, traced(py, || self.store().set(&r, &value, options)))?;
        let props = convert::properties(py, &props, self.expiry_warning)?;
        props.set_item("request_id", id)?;
        Ok(props)
    }

    /// Deletes `secret_ref` (Key Vault: soft delete); `{"name", "recoverable",
    /// "scheduled_purge", "request_id"}`.
    fn delete<'py>(&self, py: Python<'py>, secret_ref: &str) -> PyResult<Bound<'py, PyDict>> {
        let r = parse_ref(py, secret_ref)?;
        let (deleted, id) = unwrap_traced(py, traced(py, || self.store().delete(&r)))?;
        convert::deleted(py, &deleted, id)
    }

    /// The store's own name for `secret_ref` (no I/O): Key Vault's and the keyring's hashed
    /// name, Secrets Manager's prefixed path or the ARN's name.
    fn name_of(&self, py: Python<'_>, secret_ref: &str) -> PyResult<String> {
        let r = parse_ref(py, secret_ref)?;
        self.store().name_of(&r).map_err(|e| to_pyerr(py, e))
    }

    /// Properties of the current version.
    fn properties<'py>(&self, py: Python<'py>, secret_ref: &str) -> PyResult<Bound<'py, PyDict>> {
        let r = parse_ref(py, secret_ref)?;
        let (props, _) = unwrap_traced(py, traced(py, || self.store().properties(&r)))?;
        convert::properties(py, &props, self.expiry_warning)
    }

    /// Properties of every version of `secret_ref`, oldest first.
    fn versions<'py>(&self, py: Python<'py>, secret_ref: &str) -> PyResult<Bound<'py, PyList>> {
        let r = parse_ref(py, secret_ref)?;
        let (all, _) = unwrap_traced(py, traced(py, || self.store().versions(&r)))?;
        let items = all
            .iter()
            .map(|p| convert::properties(py, p, self.expiry_warning))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// One round trip that touches no value: raises if the store does not answer (or, for Key
    /// Vault, does not let this identity read it).
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        unwrap_traced(py, traced(py, || self.store().ping())).map(|_| ())
    }

    /// Properties of every secret in the store (Key Vault: all pages).
    fn list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let (all, _) = unwrap_traced(py, traced(py, || self.store().list()))?;
        let items = all
            .iter()
            .map(|p| convert::properties(py, p, self.expiry_warning))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Who the store sees (`link`, `link_id`, `via`, then the provider's ids: Key Vault's
    /// `tenant_id`, `client_id`, `object_id`); gets a token first if none was obtained yet.
    /// None where the OS user is the identity (the keyring).
    fn identity<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let identity = py
            .detach(|| self.store().identity())
            .map_err(|e| to_pyerr(py, e))?;
        identity.map(|i| convert::identity(py, &i)).transpose()
    }

    /// The credential link that got a token in this process, if any did.
    fn selected_link(&self) -> Option<&'static str> {
        self.store().selected_link()
    }

    /// False when no identity source applies (nothing would be asked for a token, and the
    /// store is not contacted); always True for the keyring.
    fn identity_applies(&self) -> PyResult<bool> {
        Ok(self.store().applies())
    }

    /// The provider's name (`azure`, `keyring`): data for messages, not a branch.
    #[getter]
    fn provider(&self) -> &'static str {
        self.store().provider().as_str()
    }

    /// The store's URL when its location is one (Key Vault), else None.
    #[getter]
    fn url(&self) -> Option<String> {
        self.store().url()
    }

    fn __repr__(&self) -> String {
        match self.store().url() {
            Some(url) => format!("<Vault {url}>"),
            None => format!("<Vault {}>", self.store().provider()),
        }
    }
}
