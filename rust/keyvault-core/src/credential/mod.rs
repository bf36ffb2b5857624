//! The credential chain, composed here because the Rust SDK has no DefaultAzureCredential.
//! Each way to get a token is a [`link::Link`]: one module under `links/`, one entry in its
//! table. `auto` tries them in order, each only when its inputs exist (decided from a
//! [`CredentialEnv`] snapshot, nothing probed: off Azure no packet goes to IMDS), and sticks
//! to the first that gets a token; it remembers which one and why it was chosen, and the
//! identity of the token (tenant, client and object ids, read from the JWT claims, never
//! verified, never printed whole).

mod chain;
mod claims;
mod env;
mod link;
mod links;
mod msi;
mod sdk_message;
#[cfg(test)]
mod tests;

pub(crate) use chain::{cache_key_lines, ChainFailure};
pub use chain::{plan, Attempt, CredentialChain};
pub use claims::{decode_claims, Claims, Identity};
pub use env::{authority_host, CredentialEnv, AZURE_CHASSIS_ASSET_TAG, ENV_NAMES};
pub use link::{LinkPlan, PlannedLink};
pub(crate) use sdk_message::sanitize_sdk_message;
