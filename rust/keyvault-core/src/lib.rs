//! hg-keyvault's core: secret refs and their Key Vault names, the configuration model, the
//! store abstraction and its providers (Azure Key Vault with its credential chain and blocking
//! session; the OS keyring).
//! Pure Rust, no Python; see `docs/core.md`.

#![warn(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "azure")]
pub mod blocking;
#[cfg(feature = "azure")]
mod cache_lock;
#[cfg(feature = "azure")]
mod cache_seal;
pub mod challenge;
pub mod ci_job;
pub mod config;
#[cfg(feature = "azure")]
pub mod credential;
#[cfg(feature = "azure")]
mod entra_error;
pub mod error;
mod fork_local;
#[cfg(feature = "azure")]
mod kernel_keys;
pub mod keyring;
pub mod name;
pub mod origin;
pub mod printable;
pub mod providers;
pub mod secret;
#[cfg(feature = "azure")]
mod secret_cache;
pub mod secret_ref;
pub mod state;
pub mod store;
#[cfg(all(feature = "azure", target_os = "linux"))]
mod system_roots;
#[cfg(feature = "azure")]
pub mod token_cache;
#[cfg(feature = "azure")]
mod token_policy;
#[cfg(feature = "azure")]
pub mod token_session;
#[cfg(feature = "azure")]
mod transport;
#[cfg(feature = "azure")]
mod vault_errors;
#[cfg(feature = "azure")]
mod vault_values;

#[cfg(feature = "azure")]
pub use azure::{KeyVaultStore, CONTENT_TYPE};
#[cfg(feature = "azure")]
pub use blocking::Session;
pub use config::{CredentialChoice, VaultConfig};
#[cfg(feature = "azure")]
pub use credential::{CredentialEnv, Identity};
pub use error::{Error, ErrorKind, Result};
pub use keyring::{KeyringBackend, KeyringConfig, KeyringStore};
pub use name::{secret_name, NamePrefix};
pub use providers::{open_store, StoreOptions, PROVIDERS};
pub use secret::SecretValue;
pub use secret_ref::SecretRef;
pub use state::SecretState;
pub use store::{
    copy_secret, CacheStatus, CopyOutcome, Deleted, Provider, Secret, SecretProperties,
    SecretStore, SetOptions, StoreIdentity, StoreInfo, ValueSource, REF_TAG,
};
/// Times as the SDK uses them.
pub use time::OffsetDateTime;
#[cfg(feature = "azure")]
pub use token_session::{ScopedToken, TokenConfig, TokenSession};
