//! Mapping refs to Key Vault secret names.
//!
//! Key Vault names allow only `[0-9A-Za-z-]`, so a `secret://` ref maps to `<prefix>` + the
//! first 32 lowercase hex characters of SHA-256 of the ref's exact text. A Key Vault secret
//! identifier keeps its own name.

use crate::error::{Error, Result};
use crate::secret_ref::SecretRef;
use sha2::{Digest, Sha256};
use std::{fmt, str::FromStr};

/// The default prefix.
pub const DEFAULT_PREFIX: &str = "hg-";

/// Hex characters of the hash that follow the prefix.
pub const HASH_HEX_LEN: usize = 32;

/// Longest Key Vault secret name.
pub const MAX_NAME_LEN: usize = 127;

/// Whether `name` is a valid Key Vault secret name: `^[0-9A-Za-z-]{1,127}$`.
pub fn is_valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A validated name prefix: starts with a letter, `[0-9A-Za-z-]`, short enough that prefix +
/// 32 hex characters is a valid Key Vault name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamePrefix(String);

impl NamePrefix {
    /// Validates a prefix (`BadConfig` if it cannot start a Key Vault name).
    pub fn parse(prefix: &str) -> Result<NamePrefix> {
        let max = MAX_NAME_LEN - HASH_HEX_LEN;
        let fail = |why: String| {
            Error::bad_config(format!("invalid secret name prefix '{}': {why}", prefix.escape_debug()))
                .with_hint(format!(
                    "use a prefix such as '{DEFAULT_PREFIX}': it must start with a letter and contain only letters, digits and '-' (at most {max} characters)"
                ))
        };
        if prefix.is_empty() {
            return Err(fail(
                "it is empty, and a Key Vault name must start with a letter".into(),
            ));
        }
        if !prefix.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(fail("it must start with a letter".into()));
        }
        if let Some(c) = prefix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(fail(format!("it contains {c:?}")));
        }
        if prefix.len() > max {
            return Err(fail(format!("it is longer than {max} characters")));
        }
        Ok(NamePrefix(prefix.to_owned()))
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for NamePrefix {
    fn default() -> Self {
        NamePrefix(DEFAULT_PREFIX.to_owned())
    }
}

impl FromStr for NamePrefix {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        NamePrefix::parse(s)
    }
}

impl fmt::Display for NamePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Key Vault secret name for a ref.
pub fn secret_name(secret_ref: &SecretRef, prefix: &NamePrefix) -> String {
    match secret_ref {
        SecretRef::Path(p) => {
            let digest = Sha256::digest(p.as_str().as_bytes());
            let mut name = prefix.as_str().to_owned();
            name.push_str(&hex::encode(digest)[..HASH_HEX_LEN]);
            name
        }
        SecretRef::VaultId(v) => v.name().to_owned(),
        SecretRef::Arn(a) => a.name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn name(text: &str, prefix: &str) -> String {
        secret_name(
            &SecretRef::parse(text).unwrap(),
            &NamePrefix::parse(prefix).unwrap(),
        )
    }

    // Vectors computed independently: printf %s 'REF' | sha256sum | cut -c1-32
    #[test]
    fn path_refs_map_to_prefix_plus_sha256_vectors() {
        assert_eq!(
            name("secret://hg/ci-bot/password", "hg-"),
            "hg-262b9dc2f9005d92ec832bc94ae27edc"
        );
        assert_eq!(
            name("secret://a", "hg-"),
            "hg-fc5aa1d1e4deeca745af529b4ca77fa0"
        );
        assert_eq!(
            name("secret://hg/deploy/ssh-key", "team-x"),
            "team-x917cb6372f19b225188aea7802f89049"
        );
        let n = name("secret://hg/ci-bot/password", "hg-");
        assert!(is_valid_secret_name(&n));
    }

    #[test]
    fn vault_ids_keep_their_name() {
        assert_eq!(
            name(
                "https://contoso.vault.azure.net/secrets/ci-pass/abc123",
                "hg-"
            ),
            "ci-pass"
        );
    }

    #[test]
    fn default_prefix_is_hg() {
        assert_eq!(NamePrefix::default().as_str(), "hg-");
        assert_eq!(NamePrefix::parse("hg-").unwrap(), NamePrefix::default());
    }

    #[test]
    fn prefixes_are_validated() {
        for ok in ["a", "hg-", "Team-1-", &"p".repeat(95)] {
            NamePrefix::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("", "empty"),
            ("1hg-", "start with a letter"),
            ("-hg", "start with a letter"),
            ("hg_", "contains '_'"),
            ("hg/", "contains '/'"),
            ("hg ", "contains ' '"),
            (&"p".repeat(96), "longer than 95"),
        ] {
            let err = NamePrefix::parse(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::BadConfig);
            assert!(err.message().contains(why), "{bad}: {}", err.message());
            assert!(err.hint().unwrap().contains("'hg-'"));
        }
    }

    #[test]
    fn secret_name_validation() {
        assert!(is_valid_secret_name("a-B-9"));
        assert!(!is_valid_secret_name(""));
        assert!(!is_valid_secret_name("a_b"));
        assert!(!is_valid_secret_name(&"a".repeat(128)));
    }
}
