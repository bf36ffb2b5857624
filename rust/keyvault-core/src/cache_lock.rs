//! One token fetch at a time per identity and vault, across the processes of one user: when
//! 64 CI steps start together with an empty cache, one fetches the token and the others find
//! it in the cache once the lock is theirs.
//!
//! An `flock(2)` on an empty file in a private directory (`$XDG_RUNTIME_DIR/hg-keyvault`, else
//! `/tmp/hg-keyvault-<uid>`, mode 0700, owned by us, not a symlink). The kernel drops the lock
//! when its holder exits, so a crashed holder never wedges the others. Waiting is bounded:
//! past `wait`, the caller goes ahead without the lock (a duplicate fetch, never a failure).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The directory of the lock files, when a safe one exists.
#[derive(Debug, Clone)]
pub(crate) struct LockDir(PathBuf);

/// A held lock; released on drop (closing the file releases the `flock`).
#[derive(Debug)]
pub(crate) struct FileLock(#[allow(dead_code)] File);

#[cfg(unix)]
impl LockDir {
    pub(crate) fn open() -> Option<Self> {
        let uid = unsafe { libc::getuid() };
        let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            Some(run) if private_dir(Path::new(&run), uid, false) => {
                PathBuf::from(run).join("hg-keyvault")
            }
            _ => std::env::temp_dir().join(format!("hg-keyvault-{uid}")),
        };
        if !dir.exists() {
            use std::os::unix::fs::DirBuilderExt;
            // Another process may create it at the same moment; the check below decides.
            let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        }
        private_dir(&dir, uid, true).then_some(Self(dir))
    }

    /// Takes the lock `name`, waiting at most `wait`; `None` if it could not be had.
    pub(crate) async fn lock(&self, name: &str, wait: Duration) -> Option<FileLock> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.0.join(format!("{name}.lock")))
            .ok()?;
        let until = Instant::now() + wait;
        let mut pause = Duration::from_millis(1);
        loop {
            // Non-blocking, so that waiting stays inside the async deadline.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Some(FileLock(file));
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) || Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    #[cfg(test)]
    pub(crate) fn at(dir: PathBuf) -> Self {
        Self(dir)
    }
}

#[cfg(not(unix))]
impl LockDir {
    pub(crate) fn open() -> Option<Self> {
        None
    }

    pub(crate) async fn lock(&self, _name: &str, _wait: Duration) -> Option<FileLock> {
        None
    }
}

/// Owned by `uid`, not a symlink, no access for group or others.
#[cfg(unix)]
fn private_dir(dir: &Path, uid: u32, strict: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return false;
    };
    meta.is_dir() && meta.uid() == uid && (!strict || meta.mode() & 0o077 == 0)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_taker_waits_then_gives_up_and_gets_it_after_release() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LockDir::at(tmp.path().to_owned());
        let held = dir.lock("k", Duration::ZERO).await.expect("free lock");
        assert!(dir.lock("k", Duration::from_millis(30)).await.is_none());
        assert!(dir.lock("other", Duration::ZERO).await.is_some());
        drop(held);
        assert!(dir.lock("k", Duration::ZERO).await.is_some());
    }

    #[test]
    fn refuses_a_directory_others_can_enter() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let uid = unsafe { libc::getuid() };
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!private_dir(tmp.path(), uid, true));
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(private_dir(tmp.path(), uid, true));
        assert!(!private_dir(tmp.path(), uid + 1, true));
    }
}
