//! All error mapping of the bindings: one exception class per core error kind, each carrying the
//! core's `kind`, `message`, `hint` and (for a refused secret) `state` as attributes (the Python side turns them into
//! `error.Abort(message, hint=hint)`).

use hg_keyvault_core::error::{Error, ErrorKind};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::{create_exception, PyErr};

create_exception!(
    _native,
    KeyVaultError,
    PyException,
    "Any failure of the vault core."
);
create_exception!(
    _native,
    BadRefError,
    KeyVaultError,
    "A secret reference is not valid."
);
create_exception!(
    _native,
    ConfigError,
    KeyVaultError,
    "The configuration is not valid."
);
create_exception!(
    _native,
    NotFoundError,
    KeyVaultError,
    "The vault has no such secret."
);
create_exception!(
    _native,
    ForbiddenError,
    KeyVaultError,
    "The identity lacks a role on the vault."
);
create_exception!(
    _native,
    DisabledError,
    KeyVaultError,
    "The secret is disabled."
);
create_exception!(
    _native,
    ExpiredError,
    KeyVaultError,
    "The secret has expired or is not valid yet."
);
create_exception!(
    _native,
    UnauthenticatedError,
    KeyVaultError,
    "No credential could get a token."
);
create_exception!(
    _native,
    UnreachableError,
    KeyVaultError,
    "The vault or identity endpoint cannot be reached."
);
create_exception!(
    _native,
    VaultTimeoutError,
    KeyVaultError,
    "The operation did not finish in time."
);
create_exception!(
    _native,
    ThrottledError,
    KeyVaultError,
    "The vault asked to wait longer than the deadline allows."
);
create_exception!(
    _native,
    ServiceError,
    KeyVaultError,
    "The vault failed or answered something unexpected."
);

/// The exception for a core error, with `kind`, `message` and `hint` set on it.
pub fn to_pyerr(py: Python<'_>, err: Error) -> PyErr {
    let message = err.message().to_string();
    let pyerr = match err.kind() {
        ErrorKind::BadRef => BadRefError::new_err(message.clone()),
        ErrorKind::BadConfig => ConfigError::new_err(message.clone()),
        ErrorKind::NotFound => NotFoundError::new_err(message.clone()),
        ErrorKind::Forbidden => ForbiddenError::new_err(message.clone()),
        ErrorKind::Disabled => DisabledError::new_err(message.clone()),
        ErrorKind::Expired => ExpiredError::new_err(message.clone()),
        ErrorKind::Unauthenticated => UnauthenticatedError::new_err(message.clone()),
        ErrorKind::Unreachable => UnreachableError::new_err(message.clone()),
        ErrorKind::Timeout => VaultTimeoutError::new_err(message.clone()),
        ErrorKind::Throttled => ThrottledError::new_err(message.clone()),
        _ => ServiceError::new_err(message.clone()),
    };
    let value = pyerr.value(py);
    // Setting plain attributes on a fresh exception instance cannot fail in practice.
    let _ = value.setattr("kind", err.kind().as_str());
    let _ = value.setattr("message", message);
    let _ = value.setattr("hint", err.hint());
    let _ = value.setattr("request_id", None::<String>);
    // A refused secret's state (`disabled`, `expired`, `not yet valid`) as the core computed it.
    let _ = value.setattr("state", err.state().map(|s| s.as_str()));
    pyerr
}

/// [`to_pyerr`] plus the `request_id` attribute: the `x-ms-client-request-id` of the vault
/// request that failed (None when none was sent, and for the keyring).
pub fn to_pyerr_traced(py: Python<'_>, err: Error, request_id: Option<String>) -> PyErr {
    let pyerr = to_pyerr(py, err);
    let _ = pyerr.value(py).setattr("request_id", request_id);
    pyerr
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("KeyVaultError", py.get_type::<KeyVaultError>())?;
    m.add("BadRefError", py.get_type::<BadRefError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("ForbiddenError", py.get_type::<ForbiddenError>())?;
    m.add("DisabledError", py.get_type::<DisabledError>())?;
    m.add("ExpiredError", py.get_type::<ExpiredError>())?;
    m.add(
        "UnauthenticatedError",
        py.get_type::<UnauthenticatedError>(),
    )?;
    m.add("UnreachableError", py.get_type::<UnreachableError>())?;
    m.add("VaultTimeoutError", py.get_type::<VaultTimeoutError>())?;
    m.add("ThrottledError", py.get_type::<ThrottledError>())?;
    m.add("ServiceError", py.get_type::<ServiceError>())?;
    Ok(())
}
