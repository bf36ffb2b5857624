//! Memory-only storage shared by the processes of one user: "user" keys in the kernel's
//! per-user keyring (`@u`, keyrings(7)). Nothing ever reaches a disk; every key gets a timeout,
//! after which the kernel discards it; permissions leave group and others out.
//!
//! Anything that goes wrong (no keyutils on this platform, a container's seccomp profile
//! blocking `add_key`, the per-user quota) makes the store unavailable or a write a no-op:
//! a cache is an optimisation, never a reason to fail.

use std::time::Duration;
use zeroize::Zeroizing;

/// Longest payload a "user" key holds.
pub(crate) const MAX_PAYLOAD: usize = 32_767;

/// The user's keyring, when the kernel lets this process use it.
#[derive(Debug)]
pub(crate) struct KernelKeys {
    #[cfg(target_os = "linux")]
    ring: linux_keyutils::KeyRing,
}

#[cfg(target_os = "linux")]
impl KernelKeys {
    pub(crate) fn open() -> Option<Self> {
        use linux_keyutils::{KeyRing, KeyRingIdentifier};
        let ring = KeyRing::from_special_id(KeyRingIdentifier::User, true).ok()?;
        Some(Self { ring })
    }

    /// The payload of the live key `description`, if there is one.
    pub(crate) fn read(&self, description: &str) -> Option<Zeroizing<Vec<u8>>> {
        let key = self.ring.search(description).ok()?;
        key.read_to_vec().ok().map(Zeroizing::new)
    }

    /// Creates or replaces `description`; the kernel drops it after `ttl`. False if refused.
    pub(crate) fn write(&self, description: &str, payload: &[u8], ttl: Duration) -> bool {
        use linux_keyutils::{KeyPermissionsBuilder, Permission};
        let secs = ttl.as_secs();
        if secs == 0 || payload.len() > MAX_PAYLOAD {
            return false;
        }
        let Ok(key) = self.ring.add_key(description, payload) else {
            return false;
        };
        // Possessor and user only: any process of this uid may read it, nobody else.
        let perms = KeyPermissionsBuilder::builder()
            .posessor(Permission::ALL)
            .user(
                Permission::VIEW
                    | Permission::READ
                    | Permission::WRITE
                    | Permission::SEARCH
                    | Permission::SETATTR,
            )
            .build();
        let ok = key.set_perms(perms).is_ok() && key.set_timeout(secs as usize).is_ok();
        if !ok {
            // A key without its timeout or permissions must not stay behind.
            let _ = key.invalidate();
        }
        ok
    }

    /// Removes `description` if it exists.
    pub(crate) fn remove(&self, description: &str) {
        if let Ok(key) = self.ring.search(description) {
            let _ = key.invalidate();
        }
    }
}

#[cfg(not(target_os = "linux"))]
impl KernelKeys {
    pub(crate) fn open() -> Option<Self> {
        None
    }

    pub(crate) fn read(&self, _description: &str) -> Option<Zeroizing<Vec<u8>>> {
        None
    }

    pub(crate) fn write(&self, _description: &str, _payload: &[u8], _ttl: Duration) -> bool {
        false
    }

    pub(crate) fn remove(&self, _description: &str) {}
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn unique(name: &str) -> String {
        format!(
            "hg-keyvault:test:{name}:{}:{}",
            std::process::id(),
            rand_suffix()
        )
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    #[test]
    fn write_read_replace_remove() {
        let Some(keys) = KernelKeys::open() else {
            eprintln!("kernel keyutils unavailable here; nothing to test");
            return;
        };
        let d = unique("rw");
        assert!(keys.read(&d).is_none());
        assert!(keys.write(&d, b"one", Duration::from_secs(30)));
        assert_eq!(keys.read(&d).unwrap().as_slice(), b"one");
        assert!(keys.write(&d, b"two", Duration::from_secs(30)));
        assert_eq!(keys.read(&d).unwrap().as_slice(), b"two");
        keys.remove(&d);
        assert!(keys.read(&d).is_none());
    }

    #[test]
    fn refuses_zero_ttl_and_oversized_payloads() {
        let Some(keys) = KernelKeys::open() else {
            return;
        };
        let d = unique("refuse");
        assert!(!keys.write(&d, b"x", Duration::from_millis(500)));
        assert!(!keys.write(&d, &vec![0u8; MAX_PAYLOAD + 1], Duration::from_secs(5)));
        assert!(keys.read(&d).is_none());
    }

    #[test]
    fn keys_expire_with_their_timeout() {
        let Some(keys) = KernelKeys::open() else {
            return;
        };
        let d = unique("expire");
        assert!(keys.write(&d, b"short", Duration::from_secs(1)));
        let until = std::time::Instant::now() + Duration::from_secs(5);
        // The kernel's clock decides; poll until it has dropped the key (bounded).
        while keys.read(&d).is_some() {
            assert!(
                std::time::Instant::now() < until,
                "key outlived its timeout"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
