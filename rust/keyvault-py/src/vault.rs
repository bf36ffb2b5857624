//! `Vault`: a blocking session on one secret store, Azure Key Vault (`Vault(url, ...)`) or the
//! OS keyring (`Vault.keyring(...)`), with the same methods. Every method that may block
//! releases the GIL (`py.detach`) so other Python threads keep running.
//!
//! Methods that reach the store report the `x-ms-client-request-id` of the vault request they
//! sent: as `request_id` in the returned dict, or as the exception's `request_id` attribute.

use crate::convert;
use crate::exceptions::{to_pyerr, to_pyerr_traced};
use hg_keyvault_core::azure::{CacheStatus, ValueSource};
use hg_keyvault_core::blocking::Session;
use hg_keyvault_core::config::{CredentialChoice, VaultConfig};
use hg_keyvault_core::name::NamePrefix;
use hg_keyvault_core::secret::SecretValue;
use hg_keyvault_core::secret_ref::SecretRef;
use hg_keyvault_core::store::{self, SecretStore, SetOptions};
use hg_keyvault_core::{KeyringBackend, KeyringConfig, KeyringStore, Result};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

enum Backend {
    // Boxed: a Session is large, and a Vault is built once per process.
    Azure(Box<Session>),
    Keyring(KeyringStore),
}

#[pyclass(frozen, module = "hgext3rd.keyvault._native")]
pub struct Vault {
    backend: Backend,
}

fn parse_ref(py: Python<'_>, text: &str) -> PyResult<SecretRef> {
    SecretRef::parse(text).map_err(|e| to_pyerr(py, e))
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
    /// The Azure session, which alone has token and secret caches.
    fn azure(&self) -> Option<&Session> {
        match &self.backend {
            Backend::Azure(session) => Some(session),
            Backend::Keyring(_) => None,
        }
    }

    fn store(&self) -> &dyn SecretStore {
        match &self.backend {
            Backend::Azure(session) => session.as_ref(),
            Backend::Keyring(keyring) => keyring,
        }
    }
}

#[pymethods]
impl Vault {
    #[new]
    // The keyword arguments of the Python constructor, one per [keyvault] option.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (url, *, credential="auto", cacerts=None, verify_challenge_resource=true,
                        timeout=10.0, name_prefix="hg-", user_agent=None, token_cache=true,
                        secret_cache=0.0, id_token_env=None))]
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
        id_token_env: Option<String>,
    ) -> PyResult<Self> {
        let err = |e| to_pyerr(py, e);
        let mut config = VaultConfig::new(url).map_err(err)?;
        config.credential = credential.parse::<CredentialChoice>().map_err(err)?;
        config.extra_roots_pem = cacerts;
        config.verify_challenge_resource = verify_challenge_resource;
        config.timeout = timeout_of(timeout)?;
        config.name_prefix = NamePrefix::parse(name_prefix).map_err(err)?;
        config.user_agent_suffix = user_agent;
        config.token_cache = token_cache;
        config.id_token_env = id_token_env;
        config.secret_cache_ttl = (secret_cache > 0.0)
            .then(|| Duration::try_from_secs_f64(secret_cache))
            .transpose()
            .map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(
                    "secret_cache must be a number of seconds (0 = off)",
                )
            })?;
        let session = py.detach(|| Session::new(&config)).map_err(err)?;
        Ok(Vault {
            backend: Backend::Azure(Box::new(session)),
        })
    }

    /// A session on the OS keyring (`keyring`: auto, secret-service, keyutils, macos-keychain,
    /// windows-credential-manager).
    #[staticmethod]
    #[pyo3(signature = (*, keyring="auto", timeout=10.0, name_prefix="hg-"))]
    fn keyring(py: Python<'_>, keyring: &str, timeout: f64, name_prefix: &str) -> PyResult<Self> {
        let err = |e| to_pyerr(py, e);
        let config = KeyringConfig {
            backend: keyring.parse::<KeyringBackend>().map_err(err)?,
            timeout: timeout_of(timeout)?,
            name_prefix: NamePrefix::parse(name_prefix).map_err(err)?,
        };
        let store = py.detach(|| KeyringStore::new(&config)).map_err(err)?;
        Ok(Vault {
            backend: Backend::Keyring(store),
        })
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
        let ((secret, source), id) = unwrap_traced(
            py,
            traced(py, || match self.azure() {
                Some(session) => session.read(&r, version),
                None => self
                    .store()
                    .get(&r, version)
                    .map(|s| (s, ValueSource::Vault)),
            }),
        )?;
        let value = PyBytes::new(py, secret.value.expose());
        let props = convert::properties(py, &secret.properties)?;
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
            .detach(|| match self.azure() {
                Some(session) => session.get_many(&valid),
                None => Ok(valid.iter().map(|r| self.store().get(r, None)).collect()),
            })
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
        let status = match self.azure() {
            Some(session) => session.cache_status().map_err(|e| to_pyerr(py, e))?,
            // The keyring holds the secrets themselves: no token, nothing cached.
            None => CacheStatus {
                token_store: None,
                token_source: None,
                secret_cache_ttl: None,
                secret_cache_unavailable: false,
            },
        };
        convert::cache_status(py, &status)
    }

    /// Seconds the secret cache keeps the current value of `secret_ref`, or None.
    fn cached_for(&self, py: Python<'_>, secret_ref: &str) -> PyResult<Option<f64>> {
        let r = parse_ref(py, secret_ref)?;
        let Some(session) = self.azure() else {
            return Ok(None);
        };
        let left = session.cached_for(&r).map_err(|e| to_pyerr(py, e))?;
        Ok(left.map(|d| d.as_secs_f64()))
    }

    /// Drops the secret cache's copy of `secret_ref` (the server rejected it, or it rotated).
    fn forget_cached(&self, py: Python<'_>, secret_ref: &str) -> PyResult<()> {
        let r = parse_ref(py, secret_ref)?;
        match self.azure() {
            Some(session) => session.forget_cached(&r).map_err(|e| to_pyerr(py, e)),
            None => Ok(()),
        }
    }

    /// Reads the current value (proving it is readable) and returns only its properties: the
    /// value is dropped, zeroized, on the Rust side and never reaches Python.
    fn check<'py>(&self, py: Python<'py>, secret_ref: &str) -> PyResult<Bound<'py, PyDict>> {
        let r = parse_ref(py, secret_ref)?;
        let (secret, id) = unwrap_traced(py, traced(py, || self.store().get(&r, None)))?;
        let props = convert::properties(py, &secret.properties)?;
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
        convert::copy_outcome(py, &outcome, id)
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
        let props = convert::properties(py, &props)?;
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

    /// Properties of the current version.
    fn properties<'py>(&self, py: Python<'py>, secret_ref: &str) -> PyResult<Bound<'py, PyDict>> {
        let r = parse_ref(py, secret_ref)?;
        let (props, _) = unwrap_traced(py, traced(py, || self.store().properties(&r)))?;
        convert::properties(py, &props)
    }

    /// Properties of every version of `secret_ref`, oldest first.
    fn versions<'py>(&self, py: Python<'py>, secret_ref: &str) -> PyResult<Bound<'py, PyList>> {
        let r = parse_ref(py, secret_ref)?;
        let (all, _) = unwrap_traced(py, traced(py, || self.store().versions(&r)))?;
        let items = all
            .iter()
            .map(|p| convert::properties(py, p))
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
            .map(|p| convert::properties(py, p))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// The identity the vault sees (`link`, `tenant_id`, `client_id`, `object_id`); gets a token
    /// first if none was obtained yet. None for the keyring (the OS user is the identity).
    fn identity<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        match &self.backend {
            Backend::Azure(session) => {
                let identity = py
                    .detach(|| session.identity())
                    .map_err(|e| to_pyerr(py, e))?;
                convert::identity(py, &identity).map(Some)
            }
            Backend::Keyring(_) => Ok(None),
        }
    }

    /// The credential link that got a token in this process, if any did.
    fn selected_link(&self) -> Option<&'static str> {
        match &self.backend {
            Backend::Azure(session) => session.selected_link().map(CredentialChoice::as_str),
            Backend::Keyring(_) => None,
        }
    }

    /// False when no credential link applies (Azure: nothing would be asked for a token, and
    /// the vault is not contacted); always True for the keyring.
    fn identity_applies(&self) -> PyResult<bool> {
        match &self.backend {
            Backend::Azure(session) => Ok(session.identity_applies()),
            Backend::Keyring(_) => Ok(true),
        }
    }

    /// `azure` or `keyring`.
    #[getter]
    fn provider(&self) -> &'static str {
        match &self.backend {
            Backend::Azure(_) => "azure",
            Backend::Keyring(_) => "keyring",
        }
    }

    /// The vault URL (None for the keyring).
    #[getter]
    fn url(&self) -> Option<String> {
        match &self.backend {
            Backend::Azure(session) => Some(session.config().vault_url.to_string()),
            Backend::Keyring(_) => None,
        }
    }

    fn __repr__(&self) -> String {
        match &self.backend {
            Backend::Azure(session) => format!("<Vault {}>", session.config().vault_url),
            Backend::Keyring(keyring) => format!("<Vault keyring {}>", keyring.config().backend),
        }
    }
}
