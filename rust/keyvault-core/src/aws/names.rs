//! Refs to Secrets Manager names, and the service's documented limits, checked before sending
//! (moto checks none of them).
//!
//! The rule: a `secret://PATH` ref is the secret named `<keyvault.name-prefix>PATH`, so
//! `secret://hg/ci-bot/password` is `hg-hg/ci-bot/password` with the default prefix `hg-`.
//! Key Vault needs a hash (its names allow only `[0-9A-Za-z-]`); Secrets Manager names allow
//! `A-Za-z0-9/_+=.@-` and up to 512 characters, so the name stays readable and an IAM policy
//! can scope the secrets hg-keyvault manages by the prefix (`secret:hg-*`). A ref segment with
//! a character Secrets Manager does not allow (`~`, `,`, `:`) is refused with the reason.
//! An ARN ref names its secret directly (`SecretId` = the ARN).

use crate::error::{Error, ErrorKind, Result};
use crate::secret_ref::{is_valid_aws_name, SecretRef, MAX_AWS_NAME_LEN, SCHEME};
use std::collections::BTreeMap;

/// Largest value: `SecretString` or `SecretBinary` of at most 65,536 bytes (API reference of
/// PutSecretValue / CreateSecret).
pub const MAX_VALUE_BYTES: usize = 65_536;

/// Most tags on one secret (the ref tag included): "Maximum number of tags per secret: 50".
pub const MAX_TAGS: usize = 50;

/// Longest tag key (characters).
pub const MAX_TAG_KEY_CHARS: usize = 128;

/// Longest tag value (characters).
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// A validated name prefix: empty or Secrets Manager characters, at most 256 of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsPrefix(String);

impl AwsPrefix {
    /// Validates `keyvault.name-prefix` for Secrets Manager.
    pub fn parse(prefix: &str) -> Result<Self> {
        if prefix.len() > 256 || !(prefix.is_empty() || is_valid_aws_name(prefix)) {
            return Err(Error::bad_config(format!(
                "invalid secret name prefix '{}' for Secrets Manager",
                prefix.escape_debug()
            ))
            .with_hint(
                "use a prefix such as 'hg-' or 'hg/': at most 256 of the characters A-Za-z0-9/_+=.@-",
            ));
        }
        Ok(Self(prefix.to_owned()))
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `SecretId` to send for `secret_ref`: the mapped name, or the ARN itself.
pub fn secret_id(secret_ref: &SecretRef, prefix: &AwsPrefix) -> Result<String> {
    match secret_ref {
        SecretRef::Arn(a) => Ok(a.as_str().to_owned()),
        SecretRef::Path(p) => {
            let name = format!("{}{}", prefix.as_str(), &p.as_str()[SCHEME.len()..]);
            check_name(&name, secret_ref)?;
            Ok(name)
        }
        SecretRef::VaultId(_) => Err(Error::bad_ref(format!(
            "{secret_ref} is a Key Vault identifier, which the aws provider cannot read"
        ))
        .with_hint(
            "use a secret:// ref or a Secrets Manager ARN, or set keyvault.provider = azure",
        )),
    }
}

/// A mapped name must be a Secrets Manager name.
fn check_name(name: &str, secret_ref: &SecretRef) -> Result<()> {
    if !is_valid_aws_name(name) {
        let why = match name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
        {
            Some(c) => format!("it contains {c:?}"),
            None => format!("it is longer than {MAX_AWS_NAME_LEN} characters"),
        };
        return Err(Error::bad_ref(format!(
            "{secret_ref} maps to the Secrets Manager name '{}', which is not valid: {why}",
            name.escape_debug()
        ))
        .with_hint(
            "Secrets Manager names allow only A-Za-z0-9/_+=.@- (1-512 characters); rename the ref",
        ));
    }
    Ok(())
}

/// A new secret should not end like an ARN's random suffix: AWS documents that a name ending
/// in a hyphen and six characters may be taken for a partial ARN ("Do not end your secret name
/// with a hyphen followed by six characters"). Checked when creating only: reading an existing
/// secret by its full name is unambiguous.
pub fn check_new_name(name: &str, secret_ref: &SecretRef) -> Result<()> {
    if ends_like_arn_suffix(name) {
        return Err(Error::bad_ref(format!(
            "{secret_ref} maps to the Secrets Manager name '{name}', which ends in '-' and six characters like the random suffix of an ARN"
        ))
        .with_hint("AWS may take such a name for a partial ARN; rename the last segment (e.g. drop or lengthen the part after the last '-')"));
    }
    Ok(())
}

fn ends_like_arn_suffix(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 7 && b[b.len() - 7] == b'-' && b[b.len() - 6..].iter().all(u8::is_ascii_alphanumeric)
}

/// Refuses a value larger than Secrets Manager stores.
pub fn check_value_size(len: usize, subject: &str) -> Result<()> {
    if len > MAX_VALUE_BYTES {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("the value for {subject} is {len} bytes; Secrets Manager stores at most {MAX_VALUE_BYTES}"),
        )
        .with_hint("store a smaller value (a key file can be stored compressed or split)"));
    }
    Ok(())
}

/// Refuses tags beyond Secrets Manager's limits (count, key and value lengths).
pub fn check_tags(tags: &BTreeMap<String, String>, subject: &str) -> Result<()> {
    let fail = |why: String| {
        Error::new(ErrorKind::TooLarge, format!("the tags of {subject} exceed Secrets Manager's limits: {why}"))
            .with_hint(format!(
                "use at most {MAX_TAGS} tags (the ref tag included), keys of at most {MAX_TAG_KEY_CHARS} and values of at most {MAX_TAG_VALUE_CHARS} characters"
            ))
    };
    if tags.len() > MAX_TAGS {
        return Err(fail(format!("{} tags", tags.len())));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > MAX_TAG_KEY_CHARS {
            return Err(fail(format!(
                "the tag key '{}' has {} characters",
                k.escape_debug(),
                k.chars().count()
            )));
        }
        if v.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(fail(format!(
                "the value of tag '{}' has {} characters",
                k.escape_debug(),
                v.chars().count()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(r: &str) -> Result<String> {
        secret_id(
            &SecretRef::parse(r).unwrap(),
            &AwsPrefix::parse("hg-").unwrap(),
        )
    }

    #[test]
    fn paths_map_to_readable_prefixed_names() {
        assert_eq!(
            id("secret://hg/ci-bot/password").unwrap(),
            "hg-hg/ci-bot/password"
        );
        assert_eq!(
            id("secret://corp/user@example.com/token").unwrap(),
            "hg-corp/user@example.com/token"
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf";
        assert_eq!(id(arn).unwrap(), arn);
        let slash = AwsPrefix::parse("hg/").unwrap();
        assert_eq!(
            secret_id(&SecretRef::parse("secret://a/b").unwrap(), &slash).unwrap(),
            "hg/a/b"
        );
        assert_eq!(AwsPrefix::parse("").unwrap().as_str(), "");
    }

    #[test]
    fn names_outside_the_character_set_or_too_long_are_refused() {
        for r in ["secret://a~b", "secret://a,b", "secret://a:b"] {
            let e = id(r).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRef, "{r}");
            assert!(e.message().contains("not valid"), "{}", e.message());
        }
        // The longest ref (256 characters, 247 after secret://) under the longest prefix (256)
        // is a 503-character name: within the 512 limit, so a valid ref always maps.
        let longest = SecretRef::parse(&format!("secret://{}", "a".repeat(247))).unwrap();
        let prefix = AwsPrefix::parse(&"p".repeat(256)).unwrap();
        assert_eq!(secret_id(&longest, &prefix).unwrap().len(), 503);
        assert!(!is_valid_aws_name(&"a".repeat(513)));
        assert!(is_valid_aws_name(&"a".repeat(512)));
        assert!(AwsPrefix::parse("hg~").is_err());
        assert!(AwsPrefix::parse(&"p".repeat(257)).is_err());
    }

    #[test]
    fn a_name_ending_like_an_arn_suffix_is_refused() {
        let r = SecretRef::parse("secret://hg/ci-bot-abc123").unwrap();
        assert!(
            id(r.as_str()).is_ok(),
            "reading it by its full name is fine"
        );
        let e = check_new_name(&id(r.as_str()).unwrap(), &r).unwrap_err();
        assert!(e.message().contains("random suffix"), "{}", e.message());
        for ok in [
            "secret://hg/ci-bot-abc12",
            "secret://hg/ci-bot-password",
            "secret://hg/x-abc1234",
        ] {
            let r = SecretRef::parse(ok).unwrap();
            assert!(check_new_name(&id(ok).unwrap(), &r).is_ok(), "{ok}");
        }
    }

    #[test]
    fn key_vault_ids_are_refused() {
        let e = id("https://v.vault.azure.net/secrets/x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRef);
    }

    #[test]
    fn values_up_to_65536_bytes_pass() {
        assert!(check_value_size(65_536, "s").is_ok());
        let e = check_value_size(65_537, "s").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
    }

    #[test]
    fn tags_are_checked_against_the_documented_limits() {
        let tags = |n: usize, k: usize, v: usize| -> BTreeMap<String, String> {
            (0..n)
                .map(|i| (format!("{i:0>k$}"), "v".repeat(v)))
                .collect()
        };
        assert!(check_tags(&tags(50, 128, 256), "s").is_ok());
        for bad in [tags(51, 3, 1), tags(1, 129, 1), tags(1, 3, 257)] {
            assert_eq!(
                check_tags(&bad, "s").unwrap_err().kind(),
                ErrorKind::TooLarge
            );
        }
    }
}
