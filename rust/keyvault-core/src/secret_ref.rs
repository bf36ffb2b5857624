//! Secret refs: the one parser for `secret://path/of/segments`, for Key Vault secret
//! identifiers (`https://<vault-host>/secrets/<name>[/<version>]`) and for AWS Secrets Manager
//! ARNs (`arn:aws:secretsmanager:<region>:<account>:secret:<name>`).

use crate::error::{Error, Result};
use std::{fmt, str::FromStr};
use url::Url;

/// The scheme of path refs.
pub const SCHEME: &str = "secret://";

/// Longest accepted ref: every store keeps the ref in a tag of the secret, and the tightest
/// tag value limit is Secrets Manager's 256 characters (`aws::names::MAX_TAG_VALUE_CHARS`; Key
/// Vault allows 512). One limit for every provider, so that `hg vault migrate` never meets a ref
/// one store takes and another refuses.
pub const MAX_REF_LEN: usize = 256;

const EXAMPLES: &str = "a valid ref looks like secret://hg/ci-bot/password, \
     https://contoso-hg.vault.azure.net/secrets/ci-bot-password \
     or arn:aws:secretsmanager:eu-west-1:123456789012:secret:hg/ci-bot";

/// Partitions whose Secrets Manager ARNs are accepted.
pub const ARN_PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

/// Longest Secrets Manager secret name.
pub const MAX_AWS_NAME_LEN: usize = 512;

/// Whether `name` is a valid Secrets Manager name: 1-512 of `A-Za-z0-9/_+=.@-`.
pub fn is_valid_aws_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_AWS_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

/// Characters allowed in a path segment besides ASCII letters and digits.
const SEGMENT_PUNCTUATION: &str = "-._~@+=,:";

/// A parsed, validated ref. Build it with [`SecretRef::parse`] (or `str::parse`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretRef {
    /// `secret://a/b/c`: a name independent of where the secret lives.
    Path(PathRef),
    /// `https://<vault-host>/secrets/<name>[/<version>]`: an existing Key Vault secret.
    VaultId(VaultIdRef),
    /// `arn:aws:secretsmanager:<region>:<account>:secret:<name>`: an existing Secrets Manager
    /// secret.
    Arn(ArnRef),
}

/// A Secrets Manager secret ARN.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArnRef {
    text: String,
    partition: String,
    region: String,
    account: String,
    name: String,
}

impl ArnRef {
    /// The ARN's exact text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The region the secret lives in.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The 12-digit account id.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The secret's name as the ARN spells it (possibly with AWS's `-XXXXXX` suffix).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A `secret://` ref.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathRef {
    text: String,
}

/// A Key Vault secret identifier.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VaultIdRef {
    text: String,
    vault_url: Url,
    name: String,
    version: Option<String>,
}

impl PathRef {
    /// The ref's exact text (`secret://...`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The segments after `secret://`.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.text[SCHEME.len()..].split('/')
    }
}

impl VaultIdRef {
    /// The identifier's exact text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `https://<vault-host>[:port]/`.
    pub fn vault_url(&self) -> &Url {
        &self.vault_url
    }

    /// The Key Vault secret name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version, when the identifier names one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
}

impl SecretRef {
    /// Parses and validates a ref; the error (`BadRef`) says why and shows a valid example.
    pub fn parse(text: &str) -> Result<SecretRef> {
        let fail = |why: &str| {
            Error::bad_ref(format!("invalid secret ref '{}': {why}", shown(text)))
                .with_hint(EXAMPLES)
        };
        if text.is_empty() {
            return Err(fail("it is empty"));
        }
        if text.len() > MAX_REF_LEN {
            return Err(fail(&format!("it is longer than {MAX_REF_LEN} characters")));
        }
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(fail(&format!("it contains the control character {c:?}")));
        }
        if text.chars().any(char::is_whitespace) {
            return Err(fail("it contains whitespace"));
        }
        if let Some(rest) = text.strip_prefix(SCHEME) {
            parse_path(text, rest).map_err(|why| fail(&why))
        } else if starts_with_ignore_case(text, SCHEME) {
            Err(fail("the scheme must be written in lowercase, secret://"))
        } else if starts_with_ignore_case(text, "https://")
            || starts_with_ignore_case(text, "http://")
        {
            parse_vault_id(text).map_err(|why| fail(&why))
        } else if starts_with_ignore_case(text, "arn:") {
            parse_arn(text).map_err(|why| fail(&why))
        } else if text.contains("://") {
            Err(fail(
                "only secret:// refs, https:// Key Vault secret identifiers and Secrets Manager ARNs are accepted",
            ))
        } else {
            Err(fail("it has no scheme; write it as secret://PATH"))
        }
    }

    /// The ref's exact text.
    pub fn as_str(&self) -> &str {
        match self {
            SecretRef::Path(p) => p.as_str(),
            SecretRef::VaultId(v) => v.as_str(),
            SecretRef::Arn(a) => a.as_str(),
        }
    }

    /// Whether this is a `secret://` path (not a provider's own identifier).
    pub fn is_path(&self) -> bool {
        matches!(self, SecretRef::Path(_))
    }

    /// For a Secrets Manager ARN: the ARN.
    pub fn arn(&self) -> Option<&ArnRef> {
        match self {
            SecretRef::Arn(a) => Some(a),
            _ => None,
        }
    }

    /// Whether this is a Key Vault secret identifier (not a `secret://` path).
    pub fn is_vault_id(&self) -> bool {
        matches!(self, SecretRef::VaultId(_))
    }

    /// For a Key Vault identifier: its vault URL.
    pub fn vault_url(&self) -> Option<&Url> {
        match self {
            SecretRef::VaultId(v) => Some(v.vault_url()),
            SecretRef::Path(_) | SecretRef::Arn(_) => None,
        }
    }

    /// For a Key Vault identifier: the version it names, if any.
    pub fn version(&self) -> Option<&str> {
        match self {
            SecretRef::VaultId(v) => v.version(),
            SecretRef::Path(_) | SecretRef::Arn(_) => None,
        }
    }
}

impl FromStr for SecretRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SecretRef::parse(s)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// The input as shown in an error: escaped and cut, so that a stray newline or a pasted
/// paragraph cannot garble the message.
fn shown(text: &str) -> String {
    let escaped: String = text.escape_debug().collect();
    if escaped.chars().count() > 80 {
        let cut: String = escaped.chars().take(77).collect();
        format!("{cut}...")
    } else {
        escaped
    }
}

fn parse_path(text: &str, rest: &str) -> std::result::Result<SecretRef, String> {
    if rest.is_empty() {
        return Err("it has no path after secret://".into());
    }
    for (i, segment) in rest.split('/').enumerate() {
        let n = i + 1;
        if segment.is_empty() {
            return Err(format!(
                "path segment {n} is empty (check for '//' or a trailing '/')"
            ));
        }
        if segment == "." || segment == ".." {
            return Err(format!(
                "path segment {n} is '{segment}', which is not allowed"
            ));
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || SEGMENT_PUNCTUATION.contains(*c)))
        {
            return Err(if c.is_ascii() {
                format!(
                    "path segment {n} contains {c:?}; segments allow letters, digits and {SEGMENT_PUNCTUATION}"
                )
            } else {
                format!("path segment {n} contains the non-ASCII character {c:?}")
            });
        }
    }
    Ok(SecretRef::Path(PathRef {
        text: text.to_owned(),
    }))
}

fn parse_vault_id(text: &str) -> std::result::Result<SecretRef, String> {
    if !starts_with_ignore_case(text, "https://") {
        return Err("a Key Vault secret identifier must use https://".into());
    }
    let url = Url::parse(text).map_err(|e| format!("it is not a valid URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a Key Vault secret identifier cannot contain user info".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a Key Vault secret identifier cannot have a query or a fragment".into());
    }
    let Some(host) = url.host_str() else {
        return Err("it has no host".into());
    };
    if host.is_empty() {
        return Err("it has no host".into());
    }
    // One trailing slash is allowed: the service accepts `/secrets/NAME/` and
    // `/secrets/NAME/VERSION/` (the REST spec's paths end with `{secret-version}`, which may be
    // empty), and identifiers copied from tools and portals sometimes end with one.
    let path = url.path();
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (name, version) =
        match segments.as_slice() {
            ["secrets"] => ("", None),
            ["secrets", name] => (*name, None),
            ["secrets", name, version] => (*name, Some(*version)),
            _ => return Err(
                "a Key Vault secret identifier has the path /secrets/NAME or /secrets/NAME/VERSION"
                    .into(),
            ),
        };
    if name.is_empty() {
        return Err("it has no secret name after /secrets/".into());
    }
    if !crate::name::is_valid_secret_name(name) {
        return Err(format!(
            "the secret name '{name}' is not a Key Vault name (1-127 letters, digits and '-')"
        ));
    }
    if let Some(v) = version {
        if v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!(
                "the version '{v}' is not a Key Vault version (letters and digits)"
            ));
        }
    }
    let mut vault_url = url.clone();
    vault_url.set_path("/");
    Ok(SecretRef::VaultId(VaultIdRef {
        text: text.to_owned(),
        vault_url,
        name: name.to_owned(),
        version: version.map(str::to_owned),
    }))
}

/// `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME` (the ARN format of the Secrets
/// Manager API reference; NAME keeps AWS's random `-XXXXXX` suffix when the ARN has one).
fn parse_arn(text: &str) -> std::result::Result<SecretRef, String> {
    let parts: Vec<&str> = text.splitn(7, ':').collect();
    let [arn, partition, service, region, account, kind, name] = parts.as_slice() else {
        return Err("an ARN has the form arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME".into());
    };
    if *arn != "arn" {
        return Err("an ARN starts with lowercase 'arn:'".into());
    }
    if !ARN_PARTITIONS.contains(partition) {
        return Err(format!(
            "the ARN's partition '{partition}' is not one of {}",
            ARN_PARTITIONS.join(", ")
        ));
    }
    if *service != "secretsmanager" || *kind != "secret" {
        return Err("only Secrets Manager secret ARNs (arn:aws:secretsmanager:...:secret:NAME) are accepted".into());
    }
    let region_ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err(format!(
            "the ARN's region '{region}' is not a region name such as eu-west-1"
        ));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the ARN's account '{account}' is not a 12-digit account id"
        ));
    }
    if !is_valid_aws_name(name) {
        return Err(format!(
            "the ARN's secret name '{name}' is not a Secrets Manager name (1-{MAX_AWS_NAME_LEN} of A-Za-z0-9/_+=.@-)"
        ));
    }
    Ok(SecretRef::Arn(ArnRef {
        text: text.to_owned(),
        partition: (*partition).to_owned(),
        region: (*region).to_owned(),
        account: (*account).to_owned(),
        name: (*name).to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn valid_refs_parse() {
        for text in [
            "secret://hg/ci-bot/password",
            "secret://a",
            "secret://hg/deploy/ssh-key",
            "secret://corp/user@example.com/token",
            "secret://x/a.b_c~d+e=f,g:h",
            "secret://...x",
        ] {
            let r = SecretRef::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.as_str(), text);
            assert!(!r.is_vault_id());
            assert_eq!(r.to_string(), text);
        }
        let r: SecretRef = "secret://hg/ci-bot/password".parse().unwrap();
        let SecretRef::Path(p) = r else { panic!() };
        assert_eq!(
            p.segments().collect::<Vec<_>>(),
            ["hg", "ci-bot", "password"]
        );
    }

    #[test]
    fn secrets_manager_arns_parse_with_region_account_and_name() {
        let text = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hg/ci-bot-AbCdEf";
        let r = SecretRef::parse(text).unwrap();
        let a = r.arn().unwrap();
        assert_eq!(
            (a.partition(), a.region(), a.account(), a.name()),
            ("aws", "eu-west-1", "123456789012", "hg/ci-bot-AbCdEf")
        );
        assert!(!r.is_path() && !r.is_vault_id());
        assert_eq!(r.to_string(), text);
        for p in ["aws-cn", "aws-us-gov"] {
            let t = format!("arn:{p}:secretsmanager:cn-north-1:123456789012:secret:x");
            assert_eq!(SecretRef::parse(&t).unwrap().arn().unwrap().partition(), p);
        }
        for (bad, why) in [
            (
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret",
                "form",
            ),
            (
                "arn:gcp:secretsmanager:eu-west-1:123456789012:secret:x",
                "partition",
            ),
            (
                "arn:aws:ssm:eu-west-1:123456789012:parameter:x",
                "Secrets Manager",
            ),
            ("arn:aws:secretsmanager::123456789012:secret:x", "region"),
            ("arn:aws:secretsmanager:eu-west-1:1234:secret:x", "account"),
            (
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:a~b",
                "name",
            ),
            (
                "ARN:aws:secretsmanager:eu-west-1:123456789012:secret:x",
                "lowercase",
            ),
        ] {
            let e = SecretRef::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRef);
            assert!(e.message().contains(why), "{bad}: {}", e.message());
        }
    }

    #[test]
    fn vault_ids_parse_with_and_without_version() {
        let r = SecretRef::parse("https://contoso.vault.azure.net/secrets/ci-pass").unwrap();
        assert!(r.is_vault_id());
        let SecretRef::VaultId(v) = &r else { panic!() };
        assert_eq!(v.vault_url().as_str(), "https://contoso.vault.azure.net/");
        assert_eq!(v.name(), "ci-pass");
        assert_eq!(v.version(), None);

        let r = SecretRef::parse(
            "https://127.0.0.1:8443/secrets/ci-pass/0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        assert_eq!(r.vault_url().unwrap().as_str(), "https://127.0.0.1:8443/");
        assert_eq!(r.version(), Some("0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn vault_ids_with_a_trailing_slash_parse() {
        let r = SecretRef::parse("https://contoso.vault.azure.net/secrets/ci-pass/").unwrap();
        let SecretRef::VaultId(v) = &r else { panic!() };
        assert_eq!(v.name(), "ci-pass");
        assert_eq!(v.version(), None);
        let r =
            SecretRef::parse("https://contoso.vault.azure.net/secrets/ci-pass/0123abcd/").unwrap();
        let SecretRef::VaultId(v) = &r else { panic!() };
        assert_eq!(v.name(), "ci-pass");
        assert_eq!(v.version(), Some("0123abcd"));
        // Only one: an empty segment is still an error.
        assert!(SecretRef::parse("https://contoso.vault.azure.net/secrets/ci-pass//").is_err());
    }

    #[test]
    fn invalid_refs_are_rejected_with_a_reason_and_an_example() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("secret://", "no path"),
            ("secret://a//b", "segment 2 is empty"),
            ("secret://a/b/", "segment 3 is empty"),
            ("secret:///a", "segment 1 is empty"),
            ("secret://a/../b", "'..'"),
            ("secret://a/./b", "'.'"),
            ("secret://a/b c", "whitespace"),
            ("secret://a/b\tc", "control character"),
            ("secret://a/b\r", "control character"),
            ("secret://a/b\n", "control character"),
            ("secret://a/b\0", "control character"),
            ("secret://a/b?c", "contains '?'"),
            ("secret://a/b#c", "contains '#'"),
            ("secret://a/b%41", "contains '%'"),
            ("secret://a\\b", "contains '\\\\'"),
            ("secret://a/jürgen", "non-ASCII"),
            ("SECRET://a/b", "lowercase"),
            ("hg/ci-bot/password", "no scheme"),
            ("ftp://x/y", "only secret://"),
            ("http://contoso.vault.azure.net/secrets/x", "https"),
            ("https://contoso.vault.azure.net/keys/x", "/secrets/NAME"),
            ("https://contoso.vault.azure.net/secrets/", "no secret name"),
            (
                "https://contoso.vault.azure.net/secrets/a/b/c",
                "/secrets/NAME",
            ),
            (
                "https://contoso.vault.azure.net/secrets/a_b",
                "not a Key Vault name",
            ),
            (
                "https://contoso.vault.azure.net/secrets/x?api-version=1",
                "query",
            ),
            ("https://u:p@contoso.vault.azure.net/secrets/x", "user info"),
            ("https://contoso.vault.azure.net/secrets/x/v_1", "version"),
        ];
        for (text, why) in cases {
            let err = SecretRef::parse(text).expect_err(text);
            assert_eq!(err.kind(), ErrorKind::BadRef, "{text}");
            assert!(
                err.message().contains(why),
                "{text:?}: {:?} should contain {why:?}",
                err.message()
            );
            assert!(err.hint().unwrap().contains("secret://hg/ci-bot/password"));
        }
        let long = format!("secret://{}", "a".repeat(MAX_REF_LEN));
        assert!(SecretRef::parse(&long)
            .unwrap_err()
            .message()
            .contains("longer"));
    }

    #[test]
    fn error_messages_escape_and_cut_the_input() {
        let err = SecretRef::parse("secret://a\nb").unwrap_err();
        assert!(err.message().contains("secret://a\\nb"));
        assert!(!err.message().contains('\n'));
    }
}
