//! What Key Vault stores for a ref: Base64 values with their content type, the service's
//! limits (checked before sending), secret identifiers and versions, and the checks a
//! returned secret must pass before its value is used.

use crate::error::{Error, ErrorKind, Result};
use crate::secret::SecretValue;
use crate::secret_ref::SecretRef;
use crate::state::SecretState;
use crate::store::{SecretProperties, REF_TAG};
use crate::vault_errors::{disabled, expired, ErrorContext};
use azure_security_keyvault_secrets::models::SecretAttributes;
use base64::Engine as _;
use std::{collections::BTreeMap, collections::HashMap};
use zeroize::Zeroize;

/// Content type of values written by hg-keyvault: the bytes, Base64 (standard alphabet).
pub const CONTENT_TYPE: &str = "application/octet-stream;base64";

/// Key Vault's limits on what it stores ("About Azure Key Vault secrets" and the service's
/// `400 BadParameter` / `SecretTooLarge` "Secret is beyond the maximum permitted length of 25600
/// characters."): a value of at most 25,600 characters as stored, which for our Base64 is
/// 19,200 bytes; at most 15 tags of at most 512 characters (name and value).
pub const MAX_STORED_VALUE_CHARS: usize = 25_600;

/// The largest value (bytes) whose Base64 fits in [`MAX_STORED_VALUE_CHARS`].
pub const MAX_VALUE_BYTES: usize = MAX_STORED_VALUE_CHARS / 4 * 3;

/// Most tags on one secret (our ref tag included).
pub const MAX_TAGS: usize = 15;

/// Longest tag name or value, in characters.
pub const MAX_TAG_CHARS: usize = 512;

pub(crate) fn check_version(version: Option<&str>) -> Result<Option<String>> {
    match version {
        None => Ok(None),
        Some(v)
            if !v.is_empty()
                && v.len() <= 64
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            Ok(Some(v.to_owned()))
        }
        Some(v) => Err(Error::bad_ref(format!(
            "'{}' is not a Key Vault secret version",
            v.escape_debug()
        ))
        .with_hint("a version is the last part of a secret identifier, letters and digits")),
    }
}

/// `(name, version)` from `https://host/secrets/NAME[/VERSION]`.
pub(crate) fn split_id(id: &str) -> (Option<String>, Option<String>) {
    let Ok(url) = url::Url::parse(id) else {
        return (None, None);
    };
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    match segments.as_slice() {
        ["secrets", name] => (Some((*name).to_owned()), None),
        ["secrets", name, version, ..] => (Some((*name).to_owned()), Some((*version).to_owned())),
        _ => (None, None),
    }
}

pub(crate) fn properties_of(
    id: Option<&str>,
    attributes: Option<&SecretAttributes>,
    content_type: Option<String>,
    tags: Option<HashMap<String, String>>,
    fallback_name: &str,
) -> SecretProperties {
    let (name, version) = id.map(split_id).unwrap_or((None, None));
    let tags: BTreeMap<String, String> = tags.unwrap_or_default().into_iter().collect();
    SecretProperties {
        secret_ref: tags.get(REF_TAG).cloned(),
        name: name.unwrap_or_else(|| fallback_name.to_owned()),
        version,
        id: id.map(str::to_owned),
        enabled: attributes.and_then(|a| a.enabled).unwrap_or(true),
        expires: attributes.and_then(|a| a.expires),
        not_before: attributes.and_then(|a| a.not_before),
        created: attributes.and_then(|a| a.created),
        updated: attributes.and_then(|a| a.updated),
        content_type,
        tags,
        scheduled_deletion: None,
    }
}

/// Our values are Base64; anything else (secrets created by hand) is taken as UTF-8 text.
pub(crate) fn decode_value(
    raw: Option<String>,
    content_type: Option<&str>,
    ctx: &ErrorContext,
) -> Result<SecretValue> {
    let mut raw = raw.unwrap_or_default();
    let result = if content_type.is_some_and(|c| c.trim().eq_ignore_ascii_case(CONTENT_TYPE)) {
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map(SecretValue::new)
            .map_err(|_| {
                Error::new(
                    ErrorKind::Service,
                    format!(
                        "{} has content type {CONTENT_TYPE} but its value is not valid Base64",
                        ctx.subject
                    ),
                )
                .with_hint("store the value again with `hg vault set`")
            })
    } else {
        Ok(SecretValue::new(raw.as_bytes().to_vec()))
    };
    raw.zeroize();
    result
}

/// What Key Vault would refuse with `400 BadParameter`, said before sending (the value stays
/// here: only sizes go into the message).
pub(crate) fn check_limits(
    value: &SecretValue,
    tags: &HashMap<String, String>,
    ctx: &ErrorContext,
) -> Result<()> {
    let bytes = value.expose().len();
    if bytes > MAX_VALUE_BYTES {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "the value for {} is {bytes} bytes; Key Vault stores at most {MAX_VALUE_BYTES} \
                 bytes per secret (25,600 characters as Base64)",
                ctx.subject
            ),
        )
        .with_hint(
            "store a smaller value: split it over several refs, or keep the data elsewhere \
             and only its key in the vault",
        ));
    }
    if tags.len() > MAX_TAGS {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "{} would carry {} tags; Key Vault allows at most {MAX_TAGS} (hg-keyvault uses \
                 one for the ref)",
                ctx.subject,
                tags.len()
            ),
        )
        .with_hint("pass fewer --tag options"));
    }
    let longest = tags
        .iter()
        .map(|(k, v)| k.chars().count().max(v.chars().count()))
        .max()
        .unwrap_or(0);
    if longest > MAX_TAG_CHARS {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "a tag of {} is {longest} characters long; Key Vault allows at most \
                 {MAX_TAG_CHARS} per tag name or value",
                ctx.subject
            ),
        )
        .with_hint("shorten the tag"));
    }
    Ok(())
}

/// Key Vault hands out expired and not-yet-valid secrets (200): the state decides.
pub(crate) fn check_usable(p: &SecretProperties, ctx: &ErrorContext) -> Result<()> {
    match SecretState::now(p) {
        SecretState::Disabled => Err(disabled(ctx)),
        SecretState::Expired => Err(expired(ctx, false)),
        SecretState::NotYetValid => Err(expired(ctx, true)),
        _ => Ok(()),
    }
}

pub(crate) fn check_ref_tag(
    secret_ref: &SecretRef,
    p: &SecretProperties,
    ctx: &ErrorContext,
) -> Result<()> {
    match (&secret_ref, &p.secret_ref) {
        (SecretRef::Path(_), Some(tagged)) if tagged != secret_ref.as_str() => Err(Error::bad_ref(
            format!("{} is tagged as {tagged}, not {secret_ref}", ctx.subject),
        )
        .with_hint(
            "two refs map to the same name: check keyvault.name-prefix and the vault's tags",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault_errors::{test_context as ctx, Access};
    use azure_core::time::OffsetDateTime;

    #[test]
    fn limits_are_checked_before_sending() {
        let c = ctx(Access::Write);
        let tags = |n: usize, len: usize| -> HashMap<String, String> {
            (0..n).map(|i| (format!("t{i}"), "v".repeat(len))).collect()
        };
        let fits = SecretValue::new(vec![7u8; MAX_VALUE_BYTES]);
        check_limits(&fits, &tags(15, 512), &c).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(fits.expose());
        assert_eq!(encoded.len(), MAX_STORED_VALUE_CHARS);
        let big = SecretValue::new(vec![7u8; MAX_VALUE_BYTES + 1]);
        let e = check_limits(&big, &tags(1, 1), &c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(e.message().contains("19201 bytes"), "{}", e.message());
        assert!(
            e.message().contains("at most 19200 bytes"),
            "{}",
            e.message()
        );
        assert_eq!(
            check_limits(&fits, &tags(16, 1), &c).unwrap_err().kind(),
            ErrorKind::TooLarge
        );
        let e = check_limits(&fits, &tags(1, 513), &c).unwrap_err();
        assert!(e.message().contains("513 characters"), "{}", e.message());
    }

    #[test]
    fn values_decode_by_content_type() {
        let c = ctx(Access::Read);
        let v = decode_value(Some("AP8=".into()), Some(CONTENT_TYPE), &c).unwrap();
        assert_eq!(v.expose(), &[0u8, 255]);
        // Secrets created by hand are text.
        let v = decode_value(Some("plain text".into()), None, &c).unwrap();
        assert_eq!(v.expose(), b"plain text");
        let v = decode_value(Some("AP8=".into()), Some("text/plain"), &c).unwrap();
        assert_eq!(v.expose(), b"AP8=");
        let e = decode_value(
            Some("!!not-base64-distinctive".into()),
            Some(CONTENT_TYPE),
            &c,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Service);
        assert!(!format!("{e:?}").contains("distinctive"));
    }

    #[test]
    fn returned_secret_state_is_checked() {
        let c = ctx(Access::Read);
        let mut p = SecretProperties {
            enabled: true,
            ..Default::default()
        };
        check_usable(&p, &c).unwrap();
        p.expires = Some(OffsetDateTime::now_utc() - azure_core::time::Duration::minutes(1));
        let e = check_usable(&p, &c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Expired);
        assert_eq!(e.state(), Some(SecretState::Expired));
        p.expires = None;
        p.not_before = Some(OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1));
        let e = check_usable(&p, &c).unwrap_err();
        assert!(e.message().contains("not valid yet"));
        assert_eq!(e.state(), Some(SecretState::NotYetValid));
        p.not_before = None;
        p.enabled = false;
        assert_eq!(
            check_usable(&p, &c).unwrap_err().kind(),
            ErrorKind::Disabled
        );
    }

    #[test]
    fn ids_split_into_name_and_version() {
        assert_eq!(
            split_id("https://v.vault.azure.net/secrets/n/abc"),
            (Some("n".into()), Some("abc".into()))
        );
        assert_eq!(
            split_id("https://v.vault.azure.net/secrets/n"),
            (Some("n".into()), None)
        );
        assert_eq!(split_id("nonsense"), (None, None));
    }

    #[test]
    fn versions_are_validated() {
        assert_eq!(
            check_version(Some("abc123")).unwrap(),
            Some("abc123".into())
        );
        assert_eq!(
            check_version(Some("../x")).unwrap_err().kind(),
            ErrorKind::BadRef
        );
    }
}
