//! The optional secret cache (`keyvault.secret-cache = SECONDS`, off by default): values read
//! from the vault, kept for a short time in the kernel keyring (memory only, per user, see
//! [`crate::kernel_keys`]), so that a burst of hg commands reads each secret once.
//!
//! Entries are named by a hash of the token cache's key (vault + identity: a value is only
//! served to the identity that was allowed to read it) and the secret's name and version. An
//! entry never outlives the secret's own expiry. Without the kernel keyring there is no secret
//! cache at all: values are never written anywhere else. Entries are sealed under the
//! credential material of the link that read the value ([`crate::cache_seal`]), so other
//! processes of the uid without that credential cannot read them.

use crate::azure::{Secret, SecretProperties};
use crate::cache_seal::{CacheSeal, Purpose};
use crate::credential::CredentialChain;
use crate::kernel_keys::KernelKeys;
use crate::secret::SecretValue;
use azure_core::time::OffsetDateTime;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use zeroize::{Zeroize, Zeroizing};

/// The secret cache of one store.
#[derive(Debug)]
pub(crate) struct SecretCache {
    kernel: KernelKeys,
    ttl: Duration,
    namespace: String,
    seal: CacheSeal,
    /// Which link got the token that read a value (its material seals the entry).
    chain: Arc<dyn SelectedLink>,
}

/// Names the credential link (or AWS source) that got the credentials in use: its material
/// seals the entries.
pub(crate) trait SelectedLink: Send + Sync + std::fmt::Debug {
    /// The link's id, once one answered.
    fn selected_link_id(&self) -> Option<&'static str>;
}

impl SelectedLink for CredentialChain {
    fn selected_link_id(&self) -> Option<&'static str> {
        CredentialChain::selected_link_id(self)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    v: u8,
    value: String,
    until: i64,
    name: String,
    version: Option<String>,
    id: Option<String>,
    secret_ref: Option<String>,
    content_type: Option<String>,
    expires: Option<i64>,
}

impl Zeroize for Payload {
    fn zeroize(&mut self) {
        self.value.zeroize();
    }
}

/// A value served from the cache, and how much longer the cache keeps it.
pub(crate) struct Hit {
    pub(crate) secret: Secret,
    pub(crate) remaining: Duration,
}

impl SecretCache {
    /// The cache, if `ttl` is set and the kernel keyring is usable.
    pub(crate) fn open(
        ttl: Option<Duration>,
        namespace: &str,
        seal: CacheSeal,
        chain: Arc<dyn SelectedLink>,
    ) -> Option<Self> {
        let ttl = ttl.filter(|t| t.as_secs() > 0)?;
        Some(Self {
            kernel: KernelKeys::open()?,
            ttl,
            namespace: namespace.to_owned(),
            seal,
            chain,
        })
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    fn description(&self, name: &str, version: Option<&str>) -> String {
        let mut h = Sha256::new();
        for part in [&self.namespace, name, version.unwrap_or("(current)")] {
            h.update(part.as_bytes());
            h.update(b"\n");
        }
        format!("hg-keyvault:secret:{}", hex::encode(&h.finalize()[..16]))
    }

    pub(crate) fn get(&self, name: &str, version: Option<&str>) -> Option<Hit> {
        let description = self.description(name, version);
        let sealed = self.kernel.read(&description)?;
        let (_, raw) = self.seal.open(Purpose::Secret, &description, &sealed)?;
        let p = Zeroizing::new(serde_json::from_slice::<Payload>(&raw).ok()?);
        let now = OffsetDateTime::now_utc();
        let until = OffsetDateTime::from_unix_timestamp(p.until).ok()?;
        if p.v != 1 || until <= now {
            return None;
        }
        let value = base64::engine::general_purpose::STANDARD
            .decode(p.value.as_bytes())
            .ok()?;
        let time = |t: Option<i64>| t.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
        let properties = SecretProperties {
            secret_ref: p.secret_ref.clone(),
            name: p.name.clone(),
            version: p.version.clone(),
            id: p.id.clone(),
            enabled: true,
            expires: time(p.expires),
            content_type: p.content_type.clone(),
            ..Default::default()
        };
        Some(Hit {
            secret: Secret {
                value: SecretValue::new(value),
                properties,
            },
            remaining: Duration::try_from(until - now).unwrap_or_default(),
        })
    }

    pub(crate) fn put(&self, name: &str, version: Option<&str>, secret: &Secret) {
        let now = OffsetDateTime::now_utc();
        let mut until = now + self.ttl;
        if let Some(expires) = secret.properties.expires {
            until = until.min(expires);
        }
        let Ok(ttl) = Duration::try_from(until - now) else {
            return;
        };
        let p = &secret.properties;
        let payload = Zeroizing::new(Payload {
            v: 1,
            value: base64::engine::general_purpose::STANDARD.encode(secret.value.expose()),
            until: until.unix_timestamp(),
            name: p.name.clone(),
            version: p.version.clone(),
            id: p.id.clone(),
            secret_ref: p.secret_ref.clone(),
            content_type: p.content_type.clone(),
            expires: p.expires.map(OffsetDateTime::unix_timestamp),
        });
        let Ok(bytes) = serde_json::to_vec(&*payload).map(Zeroizing::new) else {
            return;
        };
        let Some(link) = self.chain.selected_link_id() else {
            return;
        };
        let description = self.description(name, version);
        if let Some(sealed) = self.seal.seal(link, Purpose::Secret, &description, &bytes) {
            self.kernel.write(&description, &sealed, ttl);
        }
    }

    /// Drops the cached current value of `name` (after `hg vault set`, or a server's rejection).
    pub(crate) fn forget(&self, name: &str, version: Option<&str>) {
        self.kernel.remove(&self.description(name, version));
    }
}
