//! The emulator's shared state.

use crate::faults::Faults;
use crate::jwt::TokenKey;
use crate::principals::Principal;
use crate::request_log::RequestLog;
use crate::vault::Store;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub struct App {
    /// `https://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    pub tenant_id: &'static str,
    pub principals: Vec<Principal>,
    pub key: TokenKey,
    pub identity_header: String,
    pub token_lifetime: u64,
    pub store: Mutex<Store>,
    pub faults: Mutex<Faults>,
    /// Requests seen per target (control API excluded), and refused connections.
    pub counts: Mutex<BTreeMap<&'static str, u64>>,
    pub log: RequestLog,
    /// The vault's permission model: access policies (true) or Azure RBAC (false, the default).
    pub access_policies: AtomicBool,
    /// When set, the time (Unix seconds) the vault stamps on secrets instead of the clock:
    /// lets a test create versions within one `created` second deterministically.
    pub frozen_clock: Mutex<Option<i64>>,
}

impl App {
    pub fn principal_by_client_id(&self, client_id: &str) -> Option<&Principal> {
        self.principals
            .iter()
            .find(|p| p.client_id.eq_ignore_ascii_case(client_id))
    }

    pub fn managed(&self) -> &Principal {
        self.principals
            .iter()
            .find(|p| p.name == "managed")
            .expect("managed principal exists")
    }

    pub fn count(&self, what: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(what)
            .or_default() += 1;
    }

    pub fn access_policies(&self) -> bool {
        self.access_policies.load(Ordering::Relaxed)
    }

    pub fn set_access_policies(&self, on: bool) {
        self.access_policies.store(on, Ordering::Relaxed);
    }

    /// The vault's clock for secret timestamps (`created`, `updated`, `deletedDate`).
    pub fn clock(&self) -> i64 {
        self.frozen_clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(crate::http::now)
    }

    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }
}
