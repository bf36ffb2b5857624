//! hg-keyvault's core: secret refs and their Key Vault names, the configuration model, the
//! Azure credential chain, the Key Vault store and a blocking session for the bindings.
//! Pure Rust, no Python; see `docs/core.md`.

#![warn(missing_docs)]

pub mod azure;
pub mod blocking;
mod cache_lock;
pub mod challenge;
pub mod config;
pub mod credential;
pub mod error;
mod kernel_keys;
pub mod name;
pub mod origin;
pub mod secret;
mod secret_cache;
pub mod secret_ref;
#[cfg(target_os = "linux")]
mod system_roots;
pub mod token_cache;
mod token_policy;
mod transport;

pub use azure::{
    CacheStatus, KeyVaultStore, Secret, SecretProperties, SetOptions, ValueSource, CONTENT_TYPE,
    REF_TAG,
};
pub use blocking::Session;
pub use config::{CredentialChoice, VaultConfig};
pub use credential::{CredentialEnv, Identity};
pub use error::{Error, ErrorKind, Result};
pub use name::{secret_name, NamePrefix};
pub use secret::SecretValue;
pub use secret_ref::SecretRef;
/// Times as the SDK uses them.
pub use time::OffsetDateTime;
