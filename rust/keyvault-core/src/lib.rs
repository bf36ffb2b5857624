//! hg-keyvault's core: secret refs and their Key Vault names, the configuration model, the
//! store abstraction and its providers (Azure Key Vault with its credential chain and blocking
//! session; the OS keyring).
//! Pure Rust, no Python; see `docs/core.md`.

#![warn(missing_docs)]

#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "azure")]
pub mod blocking;
pub mod config;
#[cfg(feature = "azure")]
pub mod credential;
pub mod error;
pub mod keyring;
pub mod name;
pub mod origin;
pub mod printable;
pub mod secret;
pub mod secret_ref;
pub mod store;
#[cfg(feature = "azure")]
mod transport;

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
pub use secret::SecretValue;
pub use secret_ref::SecretRef;
pub use store::{
    copy_secret, CopyOutcome, Deleted, Provider, Secret, SecretProperties, SecretStore, SetOptions,
    StoreInfo, REF_TAG,
};
/// Times as the SDK uses them.
pub use time::OffsetDateTime;
