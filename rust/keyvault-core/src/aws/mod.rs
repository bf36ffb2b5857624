//! AWS Secrets Manager as a secret store, through the official AWS SDK for Rust.
//!
//! - Refs: `secret://PATH` is the secret named `<keyvault.name-prefix>PATH` (readable, so that
//!   an IAM policy can scope `secret:hg-*`; see [`names`]); an ARN ref names its secret and its
//!   region directly.
//! - Region: the ARN's, else `keyvault.aws-region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the
//!   profile's ([`region`]).
//! - Identity: the SDKs' standard chain, reporting which source answered ([`identity`]);
//!   temporary credentials shared across processes, sealed ([`credential_cache`]).
//! - HTTP: the SDK sends through our reqwest + rustls client ([`http_client`]); standard retry
//!   with 3 attempts and short backoff, every operation bounded by `keyvault.timeout`.
//! - Errors by AWS's error code ([`errors`]); operations in [`store`]; the blocking, fork-safe
//!   [`SecretStore`](crate::store::SecretStore) in [`session`].

pub mod credential_cache;
pub mod errors;
pub mod http_client;
pub mod identity;
pub mod names;
pub mod region;
pub mod session;
pub mod store;

pub use identity::SourceKind;
pub use names::{MAX_TAGS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS, MAX_VALUE_BYTES};
pub use session::{AwsConfig, AwsSession};
pub use store::{EXPIRES_TAG, RECOVERY_WINDOW_DAYS};
