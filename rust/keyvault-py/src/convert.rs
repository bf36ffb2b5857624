//! Core values to Python values: structured dicts, never text to re-parse. Times are Unix epoch
//! seconds (float) so Python needs no date parsing.

use hg_keyvault_core::state::SecretState;
use hg_keyvault_core::store::{
    CacheStatus, CopyOutcome, Deleted, SecretProperties, StoreIdentity, StoreInfo, TokenSource,
    ValueSource,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};

fn epoch(t: Option<OffsetDateTime>) -> Option<f64> {
    t.map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
}

/// A version's properties, with its `state` (`ok`, `expiring soon`, `expired`, `not yet valid`,
/// `disabled`) and whether that state is `readable`, as the core computes them now with
/// `warning` as the expiry warning period.
pub fn properties<'py>(
    py: Python<'py>,
    p: &SecretProperties,
    warning: Duration,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let state = SecretState::of(p, OffsetDateTime::now_utc(), warning);
    match p.scheduled_deletion {
        // A forgotten secret cannot be read, whatever its dates.
        Some(_) => {
            d.set_item("state", "scheduled for deletion")?;
            d.set_item("readable", false)?;
        }
        None => {
            d.set_item("state", state.as_str())?;
            d.set_item("readable", state.is_readable())?;
        }
    }
    d.set_item("scheduled_deletion", epoch(p.scheduled_deletion))?;
    d.set_item("ref", &p.secret_ref)?;
    d.set_item("name", &p.name)?;
    d.set_item("version", &p.version)?;
    d.set_item("id", &p.id)?;
    d.set_item("enabled", p.enabled)?;
    d.set_item("expires", epoch(p.expires))?;
    d.set_item("not_before", epoch(p.not_before))?;
    d.set_item("created", epoch(p.created))?;
    d.set_item("updated", epoch(p.updated))?;
    d.set_item("content_type", &p.content_type)?;
    d.set_item("tags", &p.tags)?;
    Ok(d)
}

pub fn store_info<'py>(py: Python<'py>, i: &StoreInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("provider", i.provider.as_str())?;
    d.set_item("location", &i.location)?;
    d.set_item("detail", &i.detail)?;
    d.set_item("label", i.label)?;
    d.set_item("location_key", i.location_key)?;
    d.set_item("credential", i.credential)?;
    Ok(d)
}

pub fn deleted<'py>(
    py: Python<'py>,
    deleted: &Deleted,
    request_id: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &deleted.name)?;
    d.set_item("recoverable", deleted.recoverable)?;
    d.set_item("scheduled_purge", epoch(deleted.scheduled_purge))?;
    d.set_item("request_id", request_id)?;
    Ok(d)
}

pub fn copy_outcome<'py>(
    py: Python<'py>,
    outcome: &CopyOutcome,
    request_id: Option<String>,
    warning: Duration,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("copied", outcome.copied)?;
    d.set_item("source", properties(py, &outcome.source, warning)?)?;
    d.set_item("target", properties(py, &outcome.target, warning)?)?;
    d.set_item("request_id", request_id)?;
    Ok(d)
}

pub fn identity<'py>(py: Python<'py>, i: &StoreIdentity) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("link", i.credential)?;
    d.set_item("link_id", i.link_id)?;
    d.set_item("via", &i.via)?;
    for (key, value) in &i.ids {
        d.set_item(key, value)?;
    }
    // The store's own ids, in the order to show them (Key Vault: tenant, client, object; AWS:
    // caller ARN, account, ...), so that `hg vault` needs no knowledge of the provider.
    let names: Vec<&str> = i.ids.iter().map(|(k, _)| *k).collect();
    d.set_item("ids", names)?;
    Ok(d)
}

pub fn epoch_to_time(seconds: Option<f64>) -> PyResult<Option<OffsetDateTime>> {
    seconds
        .map(|s| {
            OffsetDateTime::from_unix_timestamp_nanos((s * 1e9) as i128).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(format!("{s} is not a valid time"))
            })
        })
        .transpose()
}

pub fn tags(tags: Option<BTreeMap<String, String>>) -> BTreeMap<String, String> {
    tags.unwrap_or_default()
}

/// Adds `source` (`vault` or `secret-cache`) and `cached_for` (seconds or None) to properties.
pub fn value_source(props: &Bound<'_, PyDict>, source: ValueSource) -> PyResult<()> {
    let (name, left) = match source {
        ValueSource::Vault => ("vault", None),
        ValueSource::SecretCache(left) => ("secret-cache", Some(left.as_secs_f64())),
    };
    props.set_item("source", name)?;
    props.set_item("cached_for", left)
}

pub fn cache_status<'py>(py: Python<'py>, s: &CacheStatus) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("token_cache", s.token_store.map(|t| t.as_str()))?;
    let (source, until) = match s.token_source {
        Some(TokenSource::Cache(t)) => (Some("cache"), Some(t)),
        Some(TokenSource::Fetched(t)) => (Some("fetched"), Some(t)),
        None => (None, None),
    };
    d.set_item("token_source", source)?;
    d.set_item("token_fresh_until", epoch(until))?;
    d.set_item(
        "secret_cache_ttl",
        s.secret_cache_ttl.map(|t| t.as_secs_f64()),
    )?;
    d.set_item("secret_cache_unavailable", s.secret_cache_unavailable)?;
    Ok(d)
}
