//! The record one keyring item holds: the value plus what Key Vault keeps as attributes (ref,
//! version, dates, enabled, tags, earlier version ids). OS keyrings have no versions, expiry or
//! tags, and keyutils has no attributes at all; one self-describing record per ref works in
//! every store and is replaced in one write, so readers never see a value with another
//! version's metadata.
//!
//! ```json
//! {"format":"hg-keyvault/1","ref":"secret://hg/ci-bot/password","name":"hg-262b…",
//!  "version":"…32 hex…","enabled":true,"created":1767225600,"updated":1767225600,
//!  "expires":null,"not_before":null,"tags":{"team":"ci"},
//!  "history":[{"version":"…","created":1767139200}],"value":"<base64>"}
//! ```
//! Only the current value is kept: earlier versions are listed (ids and dates) but their
//! values are gone, which is what an operator rotating a password wants from a local store.

use crate::error::{Error, ErrorKind, Result};
use crate::secret::SecretValue;
use crate::store::SecretProperties;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;
use zeroize::{Zeroize, Zeroizing};

/// The `format` field of records this version writes.
pub const FORMAT: &str = "hg-keyvault/1";

/// Earlier version ids kept in a record (Windows limits a credential blob to 2560 bytes).
pub const MAX_HISTORY: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastVersion {
    pub version: String,
    pub created: i64,
}

/// A parsed record, with the value still Base64 (zeroized on drop).
#[derive(Serialize, Deserialize)]
pub struct Envelope {
    pub format: String,
    #[serde(rename = "ref")]
    pub secret_ref: String,
    pub name: String,
    pub version: String,
    pub enabled: bool,
    pub created: i64,
    pub updated: i64,
    pub expires: Option<i64>,
    pub not_before: Option<i64>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub history: Vec<PastVersion>,
    value: String,
}

impl Drop for Envelope {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("ref", &self.secret_ref)
            .field("version", &self.version)
            .field("value", &"****")
            .finish_non_exhaustive()
    }
}

fn epoch(t: Option<i64>) -> Option<OffsetDateTime> {
    t.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
}

/// A fresh version id: 32 lowercase hex characters, like Key Vault's. Unique, not secret.
pub fn new_version_id(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(
        OffsetDateTime::now_utc()
            .unix_timestamp_nanos()
            .to_le_bytes(),
    );
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hex::encode(hasher.finalize())[..32].to_owned()
}

impl Envelope {
    /// The record of a new version of `secret_ref`, following `previous` (if any).
    pub fn new_version(
        secret_ref: &str,
        name: &str,
        value: &SecretValue,
        expires: Option<OffsetDateTime>,
        tags: BTreeMap<String, String>,
        previous: Option<&Envelope>,
    ) -> Envelope {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut history = previous.map(|p| p.history.clone()).unwrap_or_default();
        if let Some(p) = previous {
            history.push(PastVersion {
                version: p.version.clone(),
                created: p.created,
            });
        }
        let excess = history.len().saturating_sub(MAX_HISTORY);
        history.drain(..excess);
        Envelope {
            format: FORMAT.to_owned(),
            secret_ref: secret_ref.to_owned(),
            name: name.to_owned(),
            version: new_version_id(name),
            enabled: true,
            created: now,
            updated: now,
            expires: expires.map(OffsetDateTime::unix_timestamp),
            not_before: None,
            tags,
            history,
            value: base64::engine::general_purpose::STANDARD.encode(value.expose()),
        }
    }

    /// Parses an item's bytes; `None` if they are not a record of ours (an item someone else
    /// wrote under the same service). The caller zeroizes `bytes`.
    pub fn parse(bytes: &[u8]) -> Option<Envelope> {
        let envelope: Envelope = serde_json::from_slice(bytes).ok()?;
        (envelope.format == FORMAT).then_some(envelope)
    }

    /// The bytes to store (zeroized on drop).
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        serde_json::to_vec(self).map(Zeroizing::new).map_err(|_| {
            Error::new(ErrorKind::Service, "cannot encode the keyring record")
                .with_hint("please report this as a bug")
        })
    }

    /// The value, decoded.
    pub fn value(&self) -> Result<SecretValue> {
        base64::engine::general_purpose::STANDARD
            .decode(self.value.as_bytes())
            .map(SecretValue::new)
            .map_err(|_| {
                Error::new(
                    ErrorKind::Service,
                    format!(
                        "the keyring record of {} holds a value that is not valid Base64",
                        self.secret_ref
                    ),
                )
                .with_hint(format!(
                    "store the value again with `hg vault set {}`",
                    self.secret_ref
                ))
            })
    }

    /// The current version's properties.
    pub fn properties(&self) -> SecretProperties {
        SecretProperties {
            secret_ref: Some(self.secret_ref.clone()),
            name: self.name.clone(),
            version: Some(self.version.clone()),
            id: None,
            enabled: self.enabled,
            expires: epoch(self.expires),
            not_before: epoch(self.not_before),
            created: epoch(Some(self.created)),
            updated: epoch(Some(self.updated)),
            content_type: None,
            tags: self.tags.clone(),
            scheduled_deletion: None,
        }
    }

    /// Every version, oldest first; earlier ones carry only their id and creation time.
    pub fn versions(&self) -> Vec<SecretProperties> {
        let mut out: Vec<SecretProperties> = self
            .history
            .iter()
            .map(|p| SecretProperties {
                secret_ref: Some(self.secret_ref.clone()),
                name: self.name.clone(),
                version: Some(p.version.clone()),
                // An earlier version's value is gone: it cannot be read any more.
                enabled: false,
                created: epoch(Some(p.created)),
                ..Default::default()
            })
            .collect();
        out.push(self.properties());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(previous: Option<&Envelope>, value: &str) -> Envelope {
        Envelope::new_version(
            "secret://a/b",
            "hg-x",
            &SecretValue::from(value),
            None,
            BTreeMap::from([("team".to_owned(), "ci".to_owned())]),
            previous,
        )
    }

    #[test]
    fn round_trips_and_keeps_the_value_out_of_debug() {
        let first = record(None, "s3cret-distinctive");
        let bytes = first.to_bytes().unwrap();
        let parsed = Envelope::parse(&bytes).unwrap();
        assert_eq!(parsed.value().unwrap().expose(), b"s3cret-distinctive");
        assert_eq!(parsed.properties(), first.properties());
        assert!(!format!("{parsed:?}").contains("s3cret"));
        assert_eq!(parsed.properties().tags["team"], "ci");
        assert_eq!(parsed.version.len(), 32);
    }

    #[test]
    fn a_new_version_keeps_the_ids_of_earlier_ones_but_not_their_values() {
        let first = record(None, "one");
        let second = record(Some(&first), "two");
        assert_ne!(first.version, second.version);
        let versions = second.versions();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0].version.as_deref(), Some(first.version.as_str()));
        assert!(!versions[0].enabled);
        assert_eq!(
            versions[1].version.as_deref(),
            Some(second.version.as_str())
        );
        let bytes = second.to_bytes().unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("b25l")); // "one" in Base64
    }

    #[test]
    fn history_is_bounded() {
        let mut current = record(None, "v");
        for _ in 0..(MAX_HISTORY + 5) {
            current = record(Some(&current), "v");
        }
        assert_eq!(current.history.len(), MAX_HISTORY);
    }

    #[test]
    fn foreign_items_are_not_records() {
        assert!(Envelope::parse(b"just a password").is_none());
        assert!(Envelope::parse(br#"{"format":"other/1"}"#).is_none());
    }
}
