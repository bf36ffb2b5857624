//! The emulator's shared state.

use crate::ci_oidc::CiIssuers;
use crate::faults::Faults;
use crate::federation::FederatedCredential;
use crate::identity::arc::ArcState;
use crate::identity::HostIdentities;
use crate::jwt::TokenKey;
use crate::principals::Principal;
use crate::request_log::RequestLog;
use crate::vault::Store;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

pub struct App {
    /// `https://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    pub tenant_id: &'static str,
    pub principals: Vec<Principal>,
    pub key: TokenKey,
    pub identity_header: String,
    /// `MSI_SECRET` of the Azure Machine Learning endpoint.
    pub msi_secret: String,
    pub token_lifetime: u64,
    pub state_dir: PathBuf,
    /// Where the Arc endpoint writes the key files its challenges name.
    pub arc_token_dir: PathBuf,
    pub store: Mutex<Store>,
    pub faults: Mutex<Faults>,
    pub ci: CiIssuers,
    pub federated: Mutex<Vec<FederatedCredential>>,
    pub host: Mutex<HostIdentities>,
    pub arc: Mutex<ArcState>,
    /// Requests seen per target (control API excluded), and refused connections.
    pub counts: Mutex<BTreeMap<&'static str, u64>>,
    pub log: RequestLog,
    /// The vault's permission model: access policies (true) or Azure RBAC (false, the default).
    pub access_policies: AtomicBool,
    /// When set, the time (Unix seconds) the vault stamps on secrets instead of the clock:
    /// lets a test create versions within one `created` second deterministically.
    pub frozen_clock: Mutex<Option<i64>>,
    /// App registrations, their signing keys and token settings (issue 13).
    pub entra: Mutex<crate::entra_apps::EntraApps>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        *lock(&self.counts).entry(what).or_default() += 1;
    }

    pub fn access_policies(&self) -> bool {
        self.access_policies.load(Ordering::Relaxed)
    }

    pub fn set_access_policies(&self, on: bool) {
        self.access_policies.store(on, Ordering::Relaxed);
    }

    /// The vault's clock for secret timestamps (`created`, `updated`, `deletedDate`).
    pub fn clock(&self) -> i64 {
        lock(&self.frozen_clock).unwrap_or_else(crate::http::now)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub fn federated(&self) -> MutexGuard<'_, Vec<FederatedCredential>> {
        lock(&self.federated)
    }

    pub fn host_identities(&self) -> MutexGuard<'_, HostIdentities> {
        lock(&self.host)
    }

    pub fn entra(&self) -> MutexGuard<'_, crate::entra_apps::EntraApps> {
        lock(&self.entra)
    }

    pub fn arc(&self) -> MutexGuard<'_, ArcState> {
        lock(&self.arc)
    }
}
