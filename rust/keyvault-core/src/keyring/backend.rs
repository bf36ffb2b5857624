//! The OS credential stores of the `keyring` crate family, opened by name, plus the one thing
//! keyring-core leaves to each store: finding every item hg-keyvault wrote.
//!
//! Items are addressed as service [`SERVICE`], user = the ref's name (`hg-<hash>`), so the
//! same ref lands on the same item in every store. keyutils keys are described
//! `hg-keyvault:<name>`; Secret Service items get the label `hg-keyvault <ref>` for desktop UIs.

use crate::error::{Error, ErrorKind, Result};
use keyring_core::{CredentialStore, Entry};
use std::collections::HashMap;
use std::sync::Arc;
use std::{fmt, str::FromStr};

/// The keyring service name of every item hg-keyvault writes.
pub const SERVICE: &str = "hg-keyvault";

/// Which OS store (`keyvault.keyring`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyringBackend {
    /// Linux: the Secret Service if one answers on the session bus, else keyutils. macOS: the
    /// Keychain. Windows: the Credential Manager.
    #[default]
    Auto,
    /// freedesktop.org Secret Service over D-Bus (gnome-keyring, KeePassXC, KWallet).
    SecretService,
    /// The Linux kernel's key retention service (session keyring, linked to the persistent one).
    Keyutils,
    /// The macOS login keychain.
    MacosKeychain,
    /// The Windows Credential Manager.
    WindowsCredentialManager,
}

impl KeyringBackend {
    /// Every choice.
    pub const ALL: [KeyringBackend; 5] = [
        KeyringBackend::Auto,
        KeyringBackend::SecretService,
        KeyringBackend::Keyutils,
        KeyringBackend::MacosKeychain,
        KeyringBackend::WindowsCredentialManager,
    ];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyringBackend::Auto => "auto",
            KeyringBackend::SecretService => "secret-service",
            KeyringBackend::Keyutils => "keyutils",
            KeyringBackend::MacosKeychain => "macos-keychain",
            KeyringBackend::WindowsCredentialManager => "windows-credential-manager",
        }
    }
}

impl fmt::Display for KeyringBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyringBackend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim();
        KeyringBackend::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                let names: Vec<&str> = KeyringBackend::ALL.iter().map(|b| b.as_str()).collect();
                Error::bad_config(format!(
                    "unknown keyring '{}'; choose one of {}",
                    s.escape_debug(),
                    names.join(", ")
                ))
                .with_hint(
                    "set keyvault.keyring to auto (the default) or to one of the names above",
                )
            })
    }
}

/// An opened store.
pub struct Opened {
    /// The backend actually in use (never `Auto`).
    pub backend: KeyringBackend,
    /// Why `auto` chose it.
    pub detail: Option<String>,
    store: Arc<CredentialStore>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("backend", &self.backend)
            .field("detail", &self.detail)
            .finish_non_exhaustive()
    }
}

impl Opened {
    /// Call first on every thread that touches the store. keyutils: a process without a
    /// session keyring (no PAM login: containers, CI, cron) sees the user-session keyring as
    /// `@s`, but linux-keyutils-keyring-store's own `KEYCTL_GET_PERSISTENT` then gives the
    /// thread a fresh anonymous session keyring, so its first write fails (EACCES linking into
    /// the persistent keyring) and a read on a fresh thread looks where the persistent keyring
    /// is not linked. Linking the persistent keyring into `@s` up front makes every thread (and
    /// every hg process) of the user find the same keys there.
    pub fn prepare_thread(&self) {
        #[cfg(target_os = "linux")]
        if self.backend == KeyringBackend::Keyutils {
            let _ =
                linux_keyutils::KeyRing::get_persistent(linux_keyutils::KeyRingIdentifier::Session);
        }
    }

    /// The item of `name` (it need not exist yet).
    pub fn entry(&self, name: &str, secret_ref: &str) -> keyring_core::Result<Entry> {
        let label = format!("{SERVICE} {secret_ref}");
        let description = format!("{SERVICE}:{name}");
        let modifiers: HashMap<&str, &str> = match self.backend {
            KeyringBackend::SecretService => HashMap::from([("label", label.as_str())]),
            KeyringBackend::Keyutils => HashMap::from([("description", description.as_str())]),
            _ => HashMap::new(),
        };
        self.store.build(SERVICE, name, Some(&modifiers))
    }

    /// Every item that may be one of ours (the caller parses and filters them).
    pub fn search(&self) -> keyring_core::Result<Vec<Entry>> {
        match self.backend {
            #[cfg(target_os = "linux")]
            KeyringBackend::Keyutils => keyutils_items()
                .map(|names| {
                    names
                        .iter()
                        .filter_map(|name| self.entry(name, "").ok())
                        .collect()
                })
                .map_err(|e| keyring_core::Error::PlatformFailure(e.into())),
            KeyringBackend::WindowsCredentialManager => {
                self.store.search(&HashMap::from([("pattern", SERVICE)]))
            }
            _ => self.store.search(&HashMap::from([("service", SERVICE)])),
        }
    }
}

/// keyring-core has no search for keyutils: walk the session keyring (and the keyrings linked
/// into it, such as the persistent keyring) for user keys described `hg-keyvault:<name>`.
#[cfg(target_os = "linux")]
fn keyutils_items() -> std::result::Result<Vec<String>, linux_keyutils::KeyError> {
    use linux_keyutils::{KeyRing, KeyRingIdentifier, KeyType};
    // KEYCTL_READ returns the full length even when the buffer is smaller, and the crate trusts
    // it: ask for more links than a keyring can hold in practice.
    const MAX_LINKS: usize = 65536;
    let prefix = format!("{SERVICE}:");
    let session = KeyRing::from_special_id(KeyRingIdentifier::Session, false)?;
    let mut seen_rings = vec![session];
    let mut pending = vec![session];
    let mut names = Vec::new();
    while let Some(ring) = pending.pop() {
        let Ok(links) = ring.get_links(MAX_LINKS) else {
            continue; // a keyring we may not read (another user's, revoked): not ours
        };
        for node in links.iter() {
            if let Some(inner) = node.as_ring() {
                if !seen_rings.contains(&inner) {
                    seen_rings.push(inner);
                    pending.push(inner);
                }
            } else if let Some(key) = node.as_key() {
                let Ok(meta) = key.metadata() else { continue };
                if meta.get_type() != KeyType::User {
                    continue;
                }
                if let Some(name) = meta.get_description().strip_prefix(&prefix) {
                    if !names.iter().any(|n| n == name) {
                        names.push(name.to_owned());
                    }
                }
            }
        }
    }
    Ok(names)
}

fn unavailable(backend: KeyringBackend, why: &str) -> Error {
    Error::new(
        ErrorKind::Unreachable,
        format!("cannot open the {backend} keyring: {why}"),
    )
    .with_hint(match backend {
        KeyringBackend::SecretService => {
            "start a Secret Service (gnome-keyring-daemon --components=secrets) on the session bus \
             (DBUS_SESSION_BUS_ADDRESS), or set keyvault.keyring = keyutils"
        }
        _ => "set keyvault.keyring to a store this system has, or keyvault.provider = azure",
    })
}

/// One line of a platform error (D-Bus messages can span lines).
pub fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    let mut out: String = line.chars().take(200).collect();
    if line.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// Opens `choice` (`Auto` resolves to one store of this platform).
pub fn open(choice: KeyringBackend) -> Result<Opened> {
    match choice {
        KeyringBackend::Auto => open_auto(),
        #[cfg(target_os = "linux")]
        KeyringBackend::SecretService => {
            let store = zbus_secret_service_keyring_store::Store::new()
                .map_err(|e| unavailable(choice, &one_line(&e.to_string())))?;
            Ok(Opened {
                backend: choice,
                detail: None,
                store,
            })
        }
        #[cfg(target_os = "linux")]
        KeyringBackend::Keyutils => open_keyutils(None),
        #[cfg(target_os = "macos")]
        KeyringBackend::MacosKeychain => {
            let store = apple_native_keyring_store::keychain::Store::new()
                .map_err(|e| unavailable(choice, &one_line(&e.to_string())))?;
            Ok(Opened {
                backend: choice,
                detail: None,
                store,
            })
        }
        #[cfg(windows)]
        KeyringBackend::WindowsCredentialManager => {
            let store = windows_native_keyring_store::Store::new()
                .map_err(|e| unavailable(choice, &one_line(&e.to_string())))?;
            Ok(Opened {
                backend: choice,
                detail: None,
                store,
            })
        }
        #[allow(unreachable_patterns)]
        other => Err(unavailable(other, "this platform does not have it")),
    }
}

#[cfg(target_os = "linux")]
fn open_keyutils(detail: Option<String>) -> Result<Opened> {
    let store = linux_keyutils_keyring_store::Store::new()
        .map_err(|e| unavailable(KeyringBackend::Keyutils, &one_line(&e.to_string())))?;
    // Fail now, not at the first read, when keyctl is not allowed (seccomp in containers).
    linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, false)
        .map_err(|e| {
            unavailable(
                KeyringBackend::Keyutils,
                &format!("no session keyring ({e:?})"),
            )
        })?;
    Ok(Opened {
        backend: KeyringBackend::Keyutils,
        detail,
        store,
    })
}

#[cfg(target_os = "linux")]
fn open_auto() -> Result<Opened> {
    match open(KeyringBackend::SecretService) {
        Ok(mut opened) => {
            opened.detail = Some("a Secret Service answered on the session bus".to_owned());
            Ok(opened)
        }
        Err(e) => open_keyutils(Some(format!(
            "no Secret Service: {}",
            e.message()
                .trim_start_matches("cannot open the secret-service keyring: ")
        ))),
    }
}

#[cfg(target_os = "macos")]
fn open_auto() -> Result<Opened> {
    open(KeyringBackend::MacosKeychain)
}

#[cfg(windows)]
fn open_auto() -> Result<Opened> {
    open(KeyringBackend::WindowsCredentialManager)
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn open_auto() -> Result<Opened> {
    Err(unavailable(
        KeyringBackend::Auto,
        "hg-keyvault knows no OS keyring on this platform",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_parse() {
        for b in KeyringBackend::ALL {
            assert_eq!(b.as_str().parse::<KeyringBackend>().unwrap(), b);
        }
        let e = "gnome".parse::<KeyringBackend>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadConfig);
        assert!(e.message().contains("secret-service, keyutils"));
    }

    #[test]
    fn platform_messages_are_cut_to_one_line() {
        assert_eq!(one_line("first\nsecond"), "first");
        assert_eq!(one_line(&"x".repeat(300)).chars().count(), 201);
    }
}
