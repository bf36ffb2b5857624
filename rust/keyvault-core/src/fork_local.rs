//! A slot for a value that must not cross a `fork`: Mercurial's chg forks its server for each
//! command, and an async runtime, a reactor, pooled connections or a D-Bus connection built
//! before the fork have threads and sockets that do not exist (or are shared with the parent)
//! in the child.
//!
//! The slot remembers the pid its value was built in. Seen from another process, the value is
//! gone: the next [`ForkLocal::get_or_try_init`] builds a new one, and the inherited value is
//! forgotten, never dropped (dropping would join threads that do not exist in the child and
//! could close or write to sockets the parent still uses).

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

struct Built<T> {
    pid: u32,
    value: T,
}

/// A value private to the process that built it.
pub struct ForkLocal<T> {
    slot: Mutex<Option<Built<T>>>,
    pid: fn() -> u32,
}

impl<T> Default for ForkLocal<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ForkLocal<T> {
    /// An empty slot.
    pub const fn new() -> Self {
        Self::with_pid_source(std::process::id)
    }

    /// An empty slot that asks `pid` for the current process id (tests fake a fork with it).
    const fn with_pid_source(pid: fn() -> u32) -> Self {
        ForkLocal {
            slot: Mutex::new(None),
            pid,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Built<T>>> {
        let mut guard = self
            .slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let pid = (self.pid)();
        if let Some(inherited) = guard.take_if(|b| b.pid != pid) {
            std::mem::forget(inherited);
        }
        guard
    }

    /// Locks the slot and returns this process's value, building it with `init` first if the
    /// slot is empty (or held a value inherited across a fork). The lock is held until the
    /// guard is dropped, so `init` runs once even when threads race.
    pub fn get_or_try_init<E>(
        &self,
        init: impl FnOnce() -> Result<T, E>,
    ) -> Result<ForkLocalGuard<'_, T>, E> {
        let mut guard = self.lock();
        if guard.is_none() {
            *guard = Some(Built {
                pid: (self.pid)(),
                value: init()?,
            });
        }
        Ok(ForkLocalGuard(guard))
    }

    /// This process's value, if one was built; never builds one.
    pub fn peek(&self) -> Option<ForkLocalGuard<'_, T>> {
        let guard = self.lock();
        guard.is_some().then_some(ForkLocalGuard(guard))
    }

    /// The pid the current value was built in, even if that was another process.
    pub fn built_in_pid(&self) -> Option<u32> {
        self.slot.lock().ok()?.as_ref().map(|b| b.pid)
    }
}

/// The locked value of a [`ForkLocal`].
pub struct ForkLocalGuard<'a, T>(MutexGuard<'a, Option<Built<T>>>);

impl<T> Deref for ForkLocalGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.as_ref().expect("a guard always holds a value").value
    }
}

impl<T> DerefMut for ForkLocalGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0.as_mut().expect("a guard always holds a value").value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    static FAKE_PID: AtomicU32 = AtomicU32::new(100);
    static DROPS: AtomicUsize = AtomicUsize::new(0);

    fn fake_pid() -> u32 {
        FAKE_PID.load(Ordering::SeqCst)
    }

    struct Counted(u32);
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_value_is_built_once_per_process_and_an_inherited_one_is_forgotten_not_dropped() {
        let slot: ForkLocal<Counted> = ForkLocal::with_pid_source(fake_pid);
        assert!(slot.peek().is_none());
        let mut builds = 0;
        let mut build = |pid| {
            builds += 1;
            Ok::<_, ()>(Counted(pid))
        };
        assert_eq!((*slot.get_or_try_init(|| build(100)).unwrap()).0, 100);
        // Same process: the value is reused, init does not run again.
        assert_eq!((*slot.get_or_try_init(|| build(999)).unwrap()).0, 100);
        assert_eq!((*slot.peek().unwrap()).0, 100);
        assert_eq!(slot.built_in_pid(), Some(100));

        // "Fork": the child sees no value, builds its own, and the parent's is never dropped.
        FAKE_PID.store(200, Ordering::SeqCst);
        assert!(slot.peek().is_none());
        assert_eq!(DROPS.load(Ordering::SeqCst), 0);
        assert_eq!((*slot.get_or_try_init(|| build(200)).unwrap()).0, 200);
        assert_eq!(DROPS.load(Ordering::SeqCst), 0);
        assert_eq!(slot.built_in_pid(), Some(200));
        let _ = build;
        assert_eq!(builds, 2);

        // A failed init leaves the slot empty.
        let empty: ForkLocal<Counted> = ForkLocal::with_pid_source(fake_pid);
        assert!(empty.get_or_try_init(|| Err::<Counted, _>("no")).is_err());
        assert!(empty.peek().is_none());
    }
}
