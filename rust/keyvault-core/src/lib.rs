//! hg-keyvault's core: secret refs and their Key Vault names, the configuration model, the
//! Azure credential chain, the Key Vault store and a blocking session for the bindings.
//! Pure Rust, no Python; see `docs/core.md`.

#![warn(missing_docs)]

pub mod azure;
pub mod blocking;
pub mod config;
pub mod credential;
pub mod error;
pub mod name;
pub mod origin;
pub mod printable;
pub mod secret;
pub mod secret_ref;
mod transport;

pub use azure::{KeyVaultStore, Secret, SecretProperties, SetOptions, CONTENT_TYPE, REF_TAG};
pub use blocking::Session;
pub use config::{CredentialChoice, VaultConfig};
pub use credential::{CredentialEnv, Identity};
pub use error::{Error, ErrorKind, Result};
pub use name::{secret_name, NamePrefix};
pub use secret::SecretValue;
pub use secret_ref::SecretRef;
/// Times as the SDK uses them.
pub use time::OffsetDateTime;
