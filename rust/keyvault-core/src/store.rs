//! What every secret store offers, whichever provider holds the secrets (Azure Key Vault, the
//! OS keyring): the same refs, the same operations, the same properties and states. The
//! bindings and the commands only talk to a [`SecretStore`].

use crate::error::{Error, ErrorKind, Result};
use crate::secret::SecretValue;
use crate::secret_ref::SecretRef;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;

/// Key Vault tag holding the ref a secret was stored under (so that listing can show refs).
pub const REF_TAG: &str = "hg-keyvault-ref";

/// Which provider holds the secrets (`keyvault.provider`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Azure Key Vault.
    Azure,
    /// The OS credential store (Secret Service, keyutils, macOS Keychain, Windows).
    Keyring,
    /// AWS Secrets Manager.
    Aws,
}

impl Provider {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Azure => "azure",
            Provider::Keyring => "keyring",
            Provider::Aws => "aws",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret's value and properties.
#[derive(Clone, Debug)]
pub struct Secret {
    /// The bytes (redacted in `Debug`).
    pub value: SecretValue,
    /// Everything else.
    pub properties: SecretProperties,
}

/// What the store says about a secret (version), never the value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretProperties {
    /// The ref the secret was stored under (Key Vault: the `hg-keyvault-ref` tag), if known.
    pub secret_ref: Option<String>,
    /// The store's name for it (Key Vault name; the keyring entry's user).
    pub name: String,
    /// Version id.
    pub version: Option<String>,
    /// The secret identifier URL (Key Vault only).
    pub id: Option<String>,
    /// Whether the version can be read.
    pub enabled: bool,
    /// Expiry.
    pub expires: Option<OffsetDateTime>,
    /// Not valid before.
    pub not_before: Option<OffsetDateTime>,
    /// Creation time.
    pub created: Option<OffsetDateTime>,
    /// Last update time.
    pub updated: Option<OffsetDateTime>,
    /// Content type (Key Vault only; `application/octet-stream;base64` for values hg-keyvault wrote).
    pub content_type: Option<String>,
    /// All tags (Key Vault: including `hg-keyvault-ref`).
    pub tags: BTreeMap<String, String>,
    /// When a secret scheduled for deletion (AWS: `hg vault forget`, restorable until then)
    /// will be deleted; `None` for a live secret.
    pub scheduled_deletion: Option<OffsetDateTime>,
}

/// Options of [`SecretStore::set`].
#[derive(Clone, Debug, Default)]
pub struct SetOptions {
    /// Expiry of the new version.
    pub expires: Option<OffsetDateTime>,
    /// Extra tags (the ref is always recorded by the store).
    pub tags: BTreeMap<String, String>,
}

/// What [`SecretStore::delete`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The store's name of the deleted secret.
    pub name: String,
    /// Whether it can still be recovered (Key Vault soft delete); the keyring cannot.
    pub recoverable: bool,
    /// When a soft-deleted secret will be purged for good, if the store says.
    pub scheduled_purge: Option<OffsetDateTime>,
}

/// Where the secrets live, as `hg vault` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreInfo {
    /// The provider.
    pub provider: Provider,
    /// Key Vault: the vault URL. Keyring: the backend (`secret-service`, `keyutils`, ...).
    pub location: String,
    /// Why this backend was chosen, when it was chosen automatically.
    pub detail: Option<String>,
    /// What `location` is, as `hg vault` words it (`vault`, `keyring`).
    pub label: &'static str,
    /// The template key of `location` in `hg vault -T json` (`url`, `keyring`).
    pub location_key: &'static str,
    /// The configured credential choice, for providers that find an identity (Key Vault's
    /// `keyvault.credential`); None where the OS user is the identity.
    pub credential: Option<&'static str>,
}

/// Where a value returned by [`SecretStore::read`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueSource {
    /// Read from the store just now.
    Vault,
    /// From the secret cache, which keeps it this much longer.
    SecretCache(Duration),
}

/// Where cached tokens (or temporary credentials) live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStore {
    /// The user's kernel keyring (shared by this user's processes, memory only).
    KernelKeyring,
    /// This process only (the kernel keyring is unavailable).
    Process,
}

impl CacheStore {
    /// `kernel-keyring` or `process`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStore::KernelKeyring => "kernel-keyring",
            CacheStore::Process => "process",
        }
    }
}

/// Where the token of the last request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// From the cache; fresh until then.
    Cache(OffsetDateTime),
    /// Fetched through the credential chain and cached until then.
    Fetched(OffsetDateTime),
}

/// What the caches of a store are and did (for `hg vault`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheStatus {
    /// Where tokens are cached; `None` when the token cache is off.
    pub token_store: Option<CacheStore>,
    /// Where the token of the last request came from.
    pub token_source: Option<TokenSource>,
    /// The secret cache's time to live; `None` when off or unavailable.
    pub secret_cache_ttl: Option<Duration>,
    /// The secret cache was asked for but the kernel keyring is unavailable.
    pub secret_cache_unavailable: bool,
}

/// Who the store sees, as `hg vault` and the audit log report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreIdentity {
    /// The credential group that got the token (Key Vault: a `keyvault.credential` value).
    pub credential: &'static str,
    /// The link or source itself (`azure-vm`, `github-actions`, ...).
    pub link_id: &'static str,
    /// What answered and why it was chosen, in words.
    pub via: String,
    /// The provider's ids of the caller, by name (Key Vault: `tenant_id`, `client_id`,
    /// `object_id`), in the order to show them.
    pub ids: Vec<(&'static str, Option<String>)>,
}

/// The operations both providers implement. Blocking, bounded by the configured timeout,
/// every failure one [`crate::Error`] with a hint.
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// Which provider this is (cheap: no I/O, unlike [`SecretStore::info`]).
    fn provider(&self) -> Provider;

    /// Where the secrets live.
    fn info(&self) -> StoreInfo;

    /// The store's own name for `secret_ref` (Key Vault and the keyring: the hashed name;
    /// Secrets Manager: the prefixed path or the ARN's name): what `hg vault` shows as `name:`,
    /// what the audit log records, and how `hg vault list` tells a secret of another
    /// `keyvault.name-prefix` from one this configuration reaches. No I/O.
    fn name_of(&self, secret_ref: &SecretRef) -> Result<String>;

    /// The current version's value and properties (or `version`'s); a disabled, expired or
    /// not yet valid secret is an error of that kind.
    fn get(&self, secret_ref: &SecretRef, version: Option<&str>) -> Result<Secret>;

    /// Stores `value` as a new version; readers get it from now on (ref-stable rotation).
    fn set(
        &self,
        secret_ref: &SecretRef,
        value: &SecretValue,
        options: SetOptions,
    ) -> Result<SecretProperties>;

    /// Properties of the current version; disabled and expired secrets still answer.
    fn properties(&self, secret_ref: &SecretRef) -> Result<SecretProperties>;

    /// Every version, oldest first, the current version last.
    fn versions(&self, secret_ref: &SecretRef) -> Result<Vec<SecretProperties>>;

    /// Every secret of the store (Key Vault: all of them; the keyring: those hg-keyvault wrote).
    /// Managed ones carry their ref in [`SecretProperties::secret_ref`].
    fn list(&self) -> Result<Vec<SecretProperties>>;

    /// Deletes the secret and all its versions (Key Vault: soft delete, recoverable).
    fn delete(&self, secret_ref: &SecretRef) -> Result<Deleted>;

    /// Proves the store answers, touching no value.
    fn ping(&self) -> Result<()>;

    // Policy shared by the providers, with defaults for a store that has no caches and no
    // identity of its own (the keyring); a provider overrides what it does differently.

    /// The value for use (a credential about to be sent): from the store's secret cache when it
    /// has one and it holds the value (filling it otherwise), else [`SecretStore::get`].
    fn read(&self, secret_ref: &SecretRef, version: Option<&str>) -> Result<(Secret, ValueSource)> {
        Ok((self.get(secret_ref, version)?, ValueSource::Vault))
    }

    /// [`SecretStore::get`] of the current version of many refs, in their order (a provider
    /// over the network runs several at once, bounded). The outer error is the store's own.
    fn get_many(&self, refs: &[SecretRef]) -> Result<Vec<Result<Secret>>> {
        Ok(refs.iter().map(|r| self.get(r, None)).collect())
    }

    /// The store's URL, when its location is one (Key Vault's vault URL).
    fn url(&self) -> Option<String> {
        None
    }

    /// The token and secret caches, or None when the store has none.
    fn cache_status(&self) -> Result<Option<CacheStatus>> {
        Ok(None)
    }

    /// How much longer the secret cache keeps the current value of `secret_ref`, if it has it.
    fn cached_for(&self, _secret_ref: &SecretRef) -> Result<Option<Duration>> {
        Ok(None)
    }

    /// Drops the secret cache's copy of `secret_ref` (the server rejected it, or it rotated).
    fn forget_cached(&self, _secret_ref: &SecretRef) -> Result<()> {
        Ok(())
    }

    /// Who the store sees (getting a token first if none was obtained yet), or None when the
    /// OS user is the identity.
    fn identity(&self) -> Result<Option<StoreIdentity>> {
        Ok(None)
    }

    /// The credential link that got a token in this process, if any did.
    fn selected_link(&self) -> Option<&'static str> {
        None
    }

    /// False when no identity source applies here: operations would fail before any request,
    /// so the store is not asked (`hg vault` says "not asked").
    fn applies(&self) -> bool {
        true
    }
}

/// What [`copy_secret`] did.
#[derive(Clone, Debug)]
pub struct CopyOutcome {
    /// False when the target's current value already was the source's (nothing written).
    pub copied: bool,
    /// The source's current version.
    pub source: SecretProperties,
    /// The target's current version, read back and verified.
    pub target: SecretProperties,
}

fn digest(value: &SecretValue) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(value.expose()).into()
}

/// Copies the current value of `secret_ref` from `source` to `target` as a new version, with
/// the source's expiry and tags, then reads it back and compares SHA-256 digests. Idempotent:
/// when the target's current value already has the source's digest nothing is written. Values
/// and digests stay here (a digest of a short password is as good as the password).
pub fn copy_secret(
    source: &dyn SecretStore,
    target: &dyn SecretStore,
    secret_ref: &SecretRef,
) -> Result<CopyOutcome> {
    let secret = source.get(secret_ref, None)?;
    let wanted = digest(&secret.value);
    match target.get(secret_ref, None) {
        Ok(current) if digest(&current.value) == wanted => {
            return Ok(CopyOutcome {
                copied: false,
                source: secret.properties,
                target: current.properties,
            });
        }
        // Missing, different, expired or disabled in the target: write a new version.
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::NotFound | ErrorKind::Expired | ErrorKind::Disabled
            ) => {}
        Err(e) => return Err(e),
    }
    let mut tags = secret.properties.tags.clone();
    tags.remove(REF_TAG);
    let written = target.set(
        secret_ref,
        &secret.value,
        SetOptions {
            expires: secret.properties.expires,
            tags,
        },
    )?;
    let back = target.get(secret_ref, None)?;
    if digest(&back.value) != wanted || back.properties.version != written.version {
        return Err(Error::new(
            ErrorKind::Service,
            format!(
                "the copy of {secret_ref} in the {} store does not read back as written",
                target.info().provider
            ),
        )
        .with_hint("another writer changed it meanwhile; run the migration again"));
    }
    Ok(CopyOutcome {
        copied: true,
        source: secret.properties,
        target: back.properties,
    })
}

thread_local! {
    static LAST_REQUEST_ID: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The `x-ms-client-request-id` of the last vault request that the calling thread's most recent
/// store operation sent (None for the keyring, or when nothing reached the vault). Store
/// operations run on the caller's thread, so this cannot mix up two threads' operations.
pub fn last_request_id() -> Option<String> {
    LAST_REQUEST_ID.with(|cell| cell.borrow().clone())
}

/// Forgets the last request id (before an operation, so a stale one is never reported).
pub fn clear_last_request_id() {
    record_request_id(None);
}

pub(crate) fn record_request_id(id: Option<String>) {
    LAST_REQUEST_ID.with(|cell| *cell.borrow_mut() = id);
}
