//! The OS keyring as a [`SecretStore`]: the same refs, names, operations and states as Key
//! Vault, one record per ref (see [`envelope`]), in the store [`backend`] opens.
//!
//! Every operation runs on a helper thread and is abandoned after the configured timeout: a
//! Secret Service can block on an unlock prompt nobody will ever see (headless), and a command
//! must fail in bounded time instead. Like [`crate::Session`], a store notices a `fork` (chg)
//! and reconnects in the child, leaking the parent's connection (its threads do not exist here).

pub mod backend;
mod envelope;

use crate::error::{Error, ErrorKind, Result};
use crate::fork_local::ForkLocal;
use crate::name::{secret_name, NamePrefix};
use crate::secret::SecretValue;
use crate::secret_ref::SecretRef;
use crate::state::SecretState;
use crate::store::{
    clear_last_request_id, Deleted, Provider, Secret, SecretProperties, SecretStore, SetOptions,
    StoreInfo,
};
pub use backend::KeyringBackend;
use backend::Opened;
use envelope::Envelope;
use std::sync::{mpsc, Arc};
use std::time::Duration;
use zeroize::Zeroizing;

/// What a [`KeyringStore`] needs (the `[keyvault]` keys that apply to the keyring).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringConfig {
    /// Which OS store.
    pub backend: KeyringBackend,
    /// Longest time one operation may take.
    pub timeout: Duration,
    /// Prefix of the names refs map to (shared with Key Vault, so names match across providers).
    pub name_prefix: NamePrefix,
}

impl Default for KeyringConfig {
    fn default() -> Self {
        KeyringConfig {
            backend: KeyringBackend::Auto,
            timeout: crate::config::DEFAULT_TIMEOUT,
            name_prefix: NamePrefix::default(),
        }
    }
}

/// Secrets in the OS keyring.
pub struct KeyringStore {
    config: KeyringConfig,
    /// Opened before a fork, a store's D-Bus connection has no threads in the child.
    live: ForkLocal<Arc<Opened>>,
}

impl std::fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringStore")
            .field("backend", &self.config.backend)
            .finish_non_exhaustive()
    }
}

/// Runs `op` on a helper thread, giving up after `timeout`.
fn bounded<T: Send + 'static>(
    timeout: Duration,
    what: &str,
    op: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("hg-keyvault-keyring".to_owned())
        .spawn(move || {
            let _ = tx.send(op());
        })
        .map_err(|e| {
            Error::new(
                ErrorKind::Service,
                format!("cannot start a keyring thread: {e}"),
            )
            .with_hint("check the process's limits on threads")
        })?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::new(
            ErrorKind::Timeout,
            format!(
                "the keyring did not answer within {} s while {what} (keyvault.timeout)",
                timeout.as_secs_f64()
            ),
        )
        .with_hint(
            "a locked Secret Service may be waiting for an unlock prompt: unlock the login keyring \
             (or run gnome-keyring-daemon --unlock), or set keyvault.keyring = keyutils",
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::new(
            ErrorKind::Service,
            format!("the keyring failed while {what}"),
        )
        .with_hint("please report this as a bug")),
    }
}

/// The one-sentence error for a keyring-core failure about `subject`. Never formats the error's
/// attached bytes (`BadEncoding`/`BadDataFormat` carry item data).
fn map_keyring_error(
    err: keyring_core::Error,
    opened: &Opened,
    subject: &str,
    secret_ref: Option<&str>,
) -> Error {
    use keyring_core::Error as K;
    let store = opened.backend;
    let set_hint = secret_ref.map_or_else(
        || "store it with `hg vault set REF`".to_owned(),
        |r| format!("store it with `hg vault set {r}`"),
    );
    match err {
        K::NoEntry => Error::new(
            ErrorKind::NotFound,
            format!("{subject} does not exist in the {store} keyring"),
        )
        .with_hint(set_hint),
        K::NoStorageAccess(e) => Error::new(
            ErrorKind::Unreachable,
            format!(
                "the {store} keyring refused access to {subject}: {}",
                backend::one_line(&e.to_string())
            ),
        )
        .with_hint("unlock the keyring (log in to the desktop, or gnome-keyring-daemon --unlock)"),
        K::PlatformFailure(e) => Error::new(
            ErrorKind::Unreachable,
            format!(
                "the {store} keyring failed on {subject}: {}",
                backend::one_line(&e.to_string())
            ),
        )
        .with_hint(
            "check that the keyring service is running, or choose another with keyvault.keyring",
        ),
        K::BadEncoding(_) | K::BadDataFormat(..) => Error::new(
            ErrorKind::Service,
            format!("the {store} keyring item of {subject} is not a hg-keyvault record"),
        )
        .with_hint(format!(
            "{}, replacing it",
            set_hint.replacen("store it", "store the value again", 1)
        )),
        K::Ambiguous(items) => Error::new(
            ErrorKind::Service,
            format!(
                "{} items of the {store} keyring match {subject}",
                items.len()
            ),
        )
        .with_hint("remove the duplicates (seahorse, secret-tool clear) and store the value again"),
        K::TooLong(what, limit) => Error::new(
            ErrorKind::BadRef,
            format!(
                "the {store} keyring limits {what} to {limit} characters, which {subject} exceeds"
            ),
        )
        .with_hint("use a shorter ref or keyvault.name-prefix"),
        other => Error::new(
            ErrorKind::Service,
            format!(
                "the {store} keyring failed on {subject}: {}",
                backend::one_line(&other.to_string())
            ),
        )
        .with_hint("check the keyring service, or choose another with keyvault.keyring"),
    }
}

/// The keyring keeps dates but nothing enforces them: the state decides, as for Key Vault.
fn disabled_or_expired(envelope: &Envelope, subject: &str, store: KeyringBackend) -> Result<()> {
    let state = SecretState::now(&envelope.properties());
    let renew = format!(
        "store a new version with `hg vault set {}`",
        envelope.secret_ref
    );
    let refused = match state {
        SecretState::Disabled => Error::new(
            ErrorKind::Disabled,
            format!("{subject} is disabled in the {store} keyring"),
        )
        .with_hint(renew),
        SecretState::Expired => Error::new(
            ErrorKind::Expired,
            format!("{subject} has expired in the {store} keyring"),
        )
        .with_hint(format!("{renew} (add --expires for its new expiry)")),
        SecretState::NotYetValid => Error::new(
            ErrorKind::Expired,
            format!("{subject} is not valid yet in the {store} keyring"),
        )
        .with_hint(renew),
        _ => return Ok(()),
    };
    Err(refused.with_state(state))
}

/// A ref, its name and how messages call it.
#[derive(Clone)]
struct Target {
    secret_ref: String,
    name: String,
    subject: String,
}

/// Reads the record of `target`; `Ok(None)` when there is no item.
fn read_record(opened: &Opened, target: &Target) -> Result<Option<Envelope>> {
    let entry = opened
        .entry(&target.name, &target.secret_ref)
        .map_err(|e| map_keyring_error(e, opened, &target.subject, Some(&target.secret_ref)))?;
    let bytes = match entry.get_secret() {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(keyring_core::Error::NoEntry) => return Ok(None),
        Err(e) => {
            return Err(map_keyring_error(
                e,
                opened,
                &target.subject,
                Some(&target.secret_ref),
            ))
        }
    };
    let envelope = Envelope::parse(&bytes).ok_or_else(|| {
        map_keyring_error(
            keyring_core::Error::BadEncoding(Vec::new()),
            opened,
            &target.subject,
            Some(&target.secret_ref),
        )
    })?;
    if envelope.secret_ref != target.secret_ref {
        return Err(Error::bad_ref(format!(
            "{} is recorded as {}, not {}",
            target.subject, envelope.secret_ref, target.secret_ref
        ))
        .with_hint("two refs map to the same name: check keyvault.name-prefix"));
    }
    Ok(Some(envelope))
}

fn not_found(opened: &Opened, target: &Target) -> Error {
    map_keyring_error(
        keyring_core::Error::NoEntry,
        opened,
        &target.subject,
        Some(&target.secret_ref),
    )
}

impl KeyringStore {
    /// A store for `config`; opens the OS store now, so that a missing one fails early.
    pub fn new(config: &KeyringConfig) -> Result<KeyringStore> {
        if config.timeout.is_zero() {
            return Err(Error::bad_config("the keyring timeout is zero")
                .with_hint("set keyvault.timeout to a number of seconds, e.g. 10"));
        }
        let store = KeyringStore {
            config: config.clone(),
            live: ForkLocal::new(),
        };
        store.opened()?;
        Ok(store)
    }

    /// The configuration.
    pub fn config(&self) -> &KeyringConfig {
        &self.config
    }

    fn opened(&self) -> Result<Arc<Opened>> {
        let choice = self.config.backend;
        let timeout = self.config.timeout;
        let opened = self.live.get_or_try_init(|| {
            bounded(timeout, "opening it", move || backend::open(choice)).map(Arc::new)
        })?;
        Ok(opened.clone())
    }

    fn target(&self, secret_ref: &SecretRef) -> Result<Target> {
        if secret_ref.is_vault_id() {
            return Err(Error::bad_ref(format!(
                "{secret_ref} is a Key Vault identifier, which the keyring provider cannot read"
            ))
            .with_hint("use a secret:// ref with the keyring, or set keyvault.provider = azure"));
        }
        if secret_ref.arn().is_some() {
            return Err(Error::bad_ref(format!(
                "{secret_ref} is a Secrets Manager ARN, which the keyring provider cannot read"
            ))
            .with_hint("use a secret:// ref with the keyring, or set keyvault.provider = aws"));
        }
        let name = secret_name(secret_ref, &self.config.name_prefix);
        Ok(Target {
            subject: format!("secret {secret_ref} ({name})"),
            secret_ref: secret_ref.as_str().to_owned(),
            name,
        })
    }

    /// Runs `op` with the opened store on a helper thread, bounded by the timeout.
    fn run<T: Send + 'static>(
        &self,
        what: &str,
        op: impl FnOnce(&Opened) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        clear_last_request_id();
        let opened = self.opened()?;
        bounded(self.config.timeout, what, move || {
            opened.prepare_thread();
            op(&opened)
        })
    }
}

impl SecretStore for KeyringStore {
    fn provider(&self) -> Provider {
        Provider::Keyring
    }

    fn info(&self) -> StoreInfo {
        let (location, detail) = match self.opened() {
            Ok(o) => (o.backend.as_str().to_owned(), o.detail.clone()),
            Err(e) => (
                self.config.backend.as_str().to_owned(),
                Some(e.message().to_owned()),
            ),
        };
        StoreInfo {
            provider: Provider::Keyring,
            location,
            detail,
            label: "keyring",
            location_key: "keyring",
            // The OS user is the identity: nothing to choose.
            credential: None,
        }
    }

    fn name_of(&self, secret_ref: &SecretRef) -> Result<String> {
        self.target(secret_ref).map(|t| t.name)
    }

    fn get(&self, secret_ref: &SecretRef, version: Option<&str>) -> Result<Secret> {
        let target = self.target(secret_ref)?;
        let version = version.map(str::to_owned);
        self.run("reading a secret", move |opened| {
            let envelope = read_record(opened, &target)?.ok_or_else(|| not_found(opened, &target))?;
            if let Some(v) = version.filter(|v| *v != envelope.version) {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{} has no readable version {v} in the {} keyring: it keeps only the current value",
                        target.subject, opened.backend
                    ),
                )
                .with_hint("leave out the version to get the current one"));
            }
            disabled_or_expired(&envelope, &target.subject, opened.backend)?;
            Ok(Secret {
                value: envelope.value()?,
                properties: envelope.properties(),
            })
        })
    }

    fn set(
        &self,
        secret_ref: &SecretRef,
        value: &SecretValue,
        options: SetOptions,
    ) -> Result<SecretProperties> {
        let target = self.target(secret_ref)?;
        if value.is_empty() {
            return Err(Error::new(
                ErrorKind::BadRef,
                format!("refusing to store an empty value for {}", target.subject),
            )
            .with_hint("pipe the value on stdin"));
        }
        let value = value.clone();
        self.run("storing a secret", move |opened| {
            // A record we cannot parse (or another ref's) is replaced, not kept as history.
            let previous = read_record(opened, &target).ok().flatten();
            let envelope = Envelope::new_version(
                &target.secret_ref,
                &target.name,
                &value,
                options.expires,
                options.tags,
                previous.as_ref(),
            );
            let bytes = envelope.to_bytes()?;
            opened
                .entry(&target.name, &target.secret_ref)
                .and_then(|entry| entry.set_secret(&bytes))
                .map_err(|e| map_keyring_error(e, opened, &target.subject, None))?;
            Ok(envelope.properties())
        })
    }

    fn properties(&self, secret_ref: &SecretRef) -> Result<SecretProperties> {
        let target = self.target(secret_ref)?;
        self.run("reading a secret's properties", move |opened| {
            read_record(opened, &target)?
                .map(|e| e.properties())
                .ok_or_else(|| not_found(opened, &target))
        })
    }

    fn versions(&self, secret_ref: &SecretRef) -> Result<Vec<SecretProperties>> {
        let target = self.target(secret_ref)?;
        self.run("listing versions", move |opened| {
            read_record(opened, &target)?
                .map(|e| e.versions())
                .ok_or_else(|| not_found(opened, &target))
        })
    }

    fn list(&self) -> Result<Vec<SecretProperties>> {
        self.run("listing secrets", move |opened| {
            let entries = opened
                .search()
                .map_err(|e| map_keyring_error(e, opened, "the list of secrets", None))?;
            let mut out: Vec<SecretProperties> = Vec::new();
            for entry in entries {
                // Items we did not write (or cannot read) are not ours to list.
                let Ok(bytes) = entry.get_secret().map(Zeroizing::new) else {
                    continue;
                };
                if let Some(envelope) = Envelope::parse(&bytes) {
                    if !out.iter().any(|p| p.name == envelope.name) {
                        out.push(envelope.properties());
                    }
                }
            }
            out.sort_by(|a, b| a.secret_ref.cmp(&b.secret_ref));
            Ok(out)
        })
    }

    fn delete(&self, secret_ref: &SecretRef) -> Result<Deleted> {
        let target = self.target(secret_ref)?;
        self.run("deleting a secret", move |opened| {
            opened
                .entry(&target.name, &target.secret_ref)
                .and_then(|entry| entry.delete_credential())
                .map_err(|e| {
                    map_keyring_error(e, opened, &target.subject, Some(&target.secret_ref))
                })?;
            Ok(Deleted {
                name: target.name.clone(),
                recoverable: false,
                scheduled_purge: None,
            })
        })
    }

    fn ping(&self) -> Result<()> {
        // Looking an item up proves the store answers, without touching a value.
        self.run("checking that it answers", move |opened| {
            match opened
                .entry("hg-keyvault-ping", "ping")
                .and_then(|e| e.get_credential().map(|_| ()))
            {
                Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
                Err(e) => Err(map_keyring_error(e, opened, "a test lookup", None)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use time::OffsetDateTime;

    fn record(enabled: bool, expires: Option<OffsetDateTime>) -> Envelope {
        let mut e = Envelope::new_version(
            "secret://a/b",
            "hg-x",
            &SecretValue::from("v"),
            expires,
            BTreeMap::new(),
            None,
        );
        e.enabled = enabled;
        e
    }

    #[test]
    fn states_match_key_vault_kinds_with_hints() {
        let s = KeyringBackend::Keyutils;
        disabled_or_expired(&record(true, None), "secret x", s).unwrap();
        let e = disabled_or_expired(&record(false, None), "secret x", s).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disabled);
        assert_eq!(e.state(), Some(SecretState::Disabled));
        assert!(e.hint().unwrap().contains("hg vault set secret://a/b"));
        let past = OffsetDateTime::now_utc() - time::Duration::hours(1);
        let e = disabled_or_expired(&record(true, Some(past)), "secret x", s).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Expired);
        assert_eq!(e.state(), Some(SecretState::Expired));
        assert!(e.message().contains("has expired in the keyutils keyring"));
        let mut later = record(true, None);
        later.not_before =
            Some((OffsetDateTime::now_utc() + time::Duration::hours(1)).unix_timestamp());
        let e = disabled_or_expired(&later, "secret x", s).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Expired);
        assert_eq!(e.state(), Some(SecretState::NotYetValid));
        assert!(e
            .message()
            .contains("is not valid yet in the keyutils keyring"));
    }

    #[test]
    fn a_hung_operation_times_out() {
        let start = std::time::Instant::now();
        let e = bounded(Duration::from_millis(200), "waiting", || {
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        })
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn platform_errors_never_show_item_bytes() {
        let opened = backend::open(KeyringBackend::Keyutils).unwrap();
        let e = map_keyring_error(
            keyring_core::Error::BadEncoding(b"s3cret-distinctive".to_vec()),
            &opened,
            "secret x",
            Some("secret://a/b"),
        );
        assert!(!format!("{e:?}").contains("s3cret"));
        assert_eq!(e.kind(), ErrorKind::Service);
    }
}
