//! The AWS identity chain, in the SDKs' standard order, built from aws-config's own providers so
//! that it can say which source answered: environment keys -> the profile (static keys,
//! `credential_process`, `role_arn` + `web_identity_token_file`) -> web identity from the
//! environment (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`) -> ECS/EKS container
//! credentials -> EC2 instance profile (IMDSv2, 1 s timeouts, one attempt, skipped when
//! `AWS_EC2_METADATA_DISABLED=true`). A source that has nothing is skipped with its reason; a
//! source that fails is the error (as aws-config's `CredentialsProviderChain` does). When no
//! source answers, the error lists each source and why.

use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use std::sync::Mutex;

/// One source of the chain, as `hg vault` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`).
    Environment,
    /// The shared config / credentials files' profile.
    Profile,
    /// `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE` (EKS IRSA, GitHub Actions OIDC).
    WebIdentity,
    /// ECS task role or EKS Pod Identity (`AWS_CONTAINER_CREDENTIALS_*`).
    Container,
    /// The EC2 instance profile, over IMDSv2.
    InstanceProfile,
}

impl SourceKind {
    /// Every source, in chain order.
    pub const ALL: [SourceKind; 5] = [
        SourceKind::Environment,
        SourceKind::Profile,
        SourceKind::WebIdentity,
        SourceKind::Container,
        SourceKind::InstanceProfile,
    ];

    /// The name `hg vault` shows (`-T json`'s `identity_source`).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Environment => "environment",
            SourceKind::Profile => "profile",
            SourceKind::WebIdentity => "web-identity",
            SourceKind::Container => "container",
            SourceKind::InstanceProfile => "instance-profile",
        }
    }

    /// The id of the source in sealed cache entries (distinct from the Azure links' ids).
    pub(crate) fn seal_id(self) -> &'static str {
        match self {
            SourceKind::Environment => "aws-environment",
            SourceKind::Profile => "aws-profile",
            SourceKind::WebIdentity => "aws-web-identity",
            SourceKind::Container => "aws-container",
            SourceKind::InstanceProfile => "aws-instance-profile",
        }
    }
}

/// The sealed-cache ids of every AWS source, in chain order.
pub(crate) const SEAL_IDS: [&str; 5] = [
    "aws-environment",
    "aws-profile",
    "aws-web-identity",
    "aws-container",
    "aws-instance-profile",
];

/// Which source answered, in words: `profile ci (credential-process)`, `web-identity`, ...
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    /// The source.
    pub kind: SourceKind,
    /// How `hg vault` words it.
    pub label: String,
}

/// Why no source answered: each source with its reason.
#[derive(Debug)]
pub(crate) struct NoCredentials {
    pub(crate) reasons: Vec<(SourceKind, String)>,
}

impl std::fmt::Display for NoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no AWS credentials: ")?;
        let parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(k, why)| format!("{}: {why}", k.as_str()))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for NoCredentials {}

/// A source that broke (not just "nothing here"): which one, and the SDK's reason.
#[derive(Debug)]
pub(crate) struct SourceFailed {
    pub(crate) kind: SourceKind,
    pub(crate) label: String,
    pub(crate) reason: String,
}

impl std::fmt::Display for SourceFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the AWS credential source {} failed: {}",
            self.label, self.reason
        )
    }
}

impl std::error::Error for SourceFailed {}

struct Source {
    kind: SourceKind,
    label: String,
    provider: Box<dyn ProvideCredentials>,
    /// Said instead of aws-config's generic "the credential provider was not enabled" when the
    /// source had nothing (the profile's: which profile, in which files).
    nothing_here: Option<String>,
}

/// aws-config's reason for a source with no inputs at all (`CredentialsNotLoaded` without a source).
const GENERIC_NOT_LOADED: &str = "the credential provider was not enabled";

/// The ordered chain; remembers which source answered last.
pub(crate) struct Chain {
    sources: Vec<Source>,
    answered: Mutex<Option<Answered>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<&str> = self.sources.iter().map(|s| s.label.as_str()).collect();
        f.debug_struct("Chain").field("sources", &labels).finish()
    }
}

/// What the profile is made of, read from the shared files (no request).
#[derive(Clone, Debug, Default)]
pub(crate) struct ProfileFacts {
    pub(crate) name: String,
    pub(crate) region: Option<String>,
    pub(crate) credential_process: bool,
    pub(crate) role_arn: Option<String>,
    pub(crate) web_identity_token_file: Option<String>,
    /// Whether the files define the profile at all.
    pub(crate) defined: bool,
    /// The config and credentials files read (`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`,
    /// else `~/.aws/config` and `~/.aws/credentials`).
    pub(crate) files: Vec<String>,
}

impl ProfileFacts {
    /// Reads `name` (or `AWS_PROFILE`, or `default`) from the config and credentials files.
    pub(crate) async fn load(name: Option<&str>) -> Self {
        use aws_types::os_shim_internal::{Env, Fs};
        let env = Env::real();
        let selected = name
            .map(str::to_owned)
            .or_else(|| env.get("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
            .unwrap_or_else(|| "default".to_owned());
        #[allow(deprecated)] // the replacement lives in aws-runtime, not a dependency of ours
        let files = aws_config::profile::profile_file::ProfileFiles::default();
        let set =
            aws_config::profile::load(&Fs::real(), &env, &files, Some(selected.clone().into()))
                .await
                .ok();
        let profile = set.as_ref().and_then(|s| s.get_profile(&selected));
        let get = |k: &str| profile.and_then(|p| p.get(k)).map(str::to_owned);
        let var = |k: &str| env.get(k).ok().filter(|v| !v.is_empty());
        let home = var("HOME").unwrap_or_else(|| "~".to_owned());
        let files = vec![
            var("AWS_CONFIG_FILE").unwrap_or_else(|| format!("{home}/.aws/config")),
            var("AWS_SHARED_CREDENTIALS_FILE")
                .unwrap_or_else(|| format!("{home}/.aws/credentials")),
        ];
        ProfileFacts {
            defined: profile.is_some(),
            files,
            region: get("region"),
            credential_process: get("credential_process").is_some(),
            role_arn: get("role_arn"),
            web_identity_token_file: get("web_identity_token_file"),
            name: selected,
        }
    }

    /// Why the profile gave nothing, when aws-config only says it was "not enabled".
    fn nothing_here(&self) -> String {
        let files = self.files.join(" or ");
        if self.defined {
            format!("profile {} in {files} has no credentials", self.name)
        } else {
            format!("no profile {} in {files}", self.name)
        }
    }

    fn label(&self) -> String {
        if self.credential_process {
            format!("profile {} (credential-process)", self.name)
        } else if self.web_identity_token_file.is_some() {
            format!("profile {} (web-identity)", self.name)
        } else if self.role_arn.is_some() {
            format!("profile {} (assume-role)", self.name)
        } else {
            format!("profile {}", self.name)
        }
    }
}

impl Chain {
    /// The standard chain over `conf` (our HTTP client, sleep, region, timeouts); the container
    /// endpoint and IMDS over `local` (the same with a client that ignores proxy variables).
    pub(crate) fn standard(
        conf: &ProviderConfig,
        local: &ProviderConfig,
        profile: &ProfileFacts,
    ) -> Self {
        use aws_config::environment::EnvironmentVariableCredentialsProvider;
        use aws_config::imds::credentials::ImdsCredentialsProvider;
        use std::time::Duration;
        let imds_client = aws_config::imds::Client::builder()
            .configure(local)
            .max_attempts(1)
            .connect_timeout(Duration::from_secs(1))
            .read_timeout(Duration::from_secs(1))
            .build();
        let sources = vec![
            Source {
                kind: SourceKind::Environment,
                label: "environment".to_owned(),
                provider: Box::new(EnvironmentVariableCredentialsProvider::new()),
                nothing_here: None,
            },
            Source {
                kind: SourceKind::Profile,
                label: profile.label(),
                provider: Box::new(
                    aws_config::profile::ProfileFileCredentialsProvider::builder()
                        .configure(conf)
                        .profile_name(&profile.name)
                        .build(),
                ),
                nothing_here: Some(profile.nothing_here()),
            },
            Source {
                kind: SourceKind::WebIdentity,
                label: "web-identity".to_owned(),
                provider: Box::new(
                    aws_config::web_identity_token::WebIdentityTokenCredentialsProvider::builder()
                        .configure(conf)
                        .build(),
                ),
                nothing_here: None,
            },
            Source {
                kind: SourceKind::Container,
                label: "container".to_owned(),
                provider: Box::new(
                    aws_config::ecs::EcsCredentialsProvider::builder()
                        .configure(local)
                        .build(),
                ),
                nothing_here: None,
            },
            Source {
                kind: SourceKind::InstanceProfile,
                label: "instance-profile".to_owned(),
                provider: Box::new(
                    ImdsCredentialsProvider::builder()
                        .configure(local)
                        .imds_client(imds_client)
                        .build(),
                ),
                nothing_here: None,
            },
        ];
        Chain {
            sources,
            answered: Mutex::new(None),
        }
    }

    /// The source that answered last, if any did.
    pub(crate) fn answered(&self) -> Option<Answered> {
        self.answered.lock().ok().and_then(|a| a.clone())
    }

    /// Records `answered` (a cache hit names the source that first got the credentials).
    pub(crate) fn adopt(&self, answered: Answered) {
        if let Ok(mut a) = self.answered.lock() {
            *a = Some(answered);
        }
    }

    /// Credentials from the first source that has them, and which one.
    pub(crate) async fn resolve(&self) -> Result<(Credentials, Answered), CredentialsError> {
        let mut reasons = Vec::new();
        for source in &self.sources {
            match source.provider.provide_credentials().await {
                Ok(creds) => {
                    let answered = Answered {
                        kind: source.kind,
                        label: source.label.clone(),
                    };
                    self.adopt(answered.clone());
                    return Ok((creds, answered));
                }
                Err(CredentialsError::CredentialsNotLoaded(e)) => {
                    let why = reason_text(&CredentialsError::CredentialsNotLoaded(e));
                    let why = match &source.nothing_here {
                        Some(better) if why.starts_with(GENERIC_NOT_LOADED) => better.clone(),
                        _ => why,
                    };
                    reasons.push((source.kind, why));
                }
                Err(e) => {
                    return Err(CredentialsError::provider_error(SourceFailed {
                        kind: source.kind,
                        label: source.label.clone(),
                        reason: reason_text(&e),
                    }));
                }
            }
        }
        Err(CredentialsError::not_loaded(NoCredentials { reasons }))
    }
}

/// The innermost useful text of a credentials error, in one line, without anything that looks
/// like a key or a token (aws-config's messages name variables and files, never values, but
/// an STS or container endpoint's body may be echoed).
pub(crate) fn reason_text(err: &CredentialsError) -> String {
    let mut texts = Vec::new();
    crate::transport::walk_errors(err, &mut |e| {
        let t = e.to_string();
        if !t.is_empty() {
            texts.push(t);
        }
    });
    let text = texts
        .iter()
        .rev()
        .find(|t| !t.starts_with(GENERIC_NOT_LOADED) && t.len() > 3)
        .cloned()
        .unwrap_or_else(|| err.to_string());
    scrub(&text.replace(['\n', '\r'], " "))
}

/// Replaces words that look like AWS keys or tokens (long runs of key characters) by `****`.
/// A word is a run of `[A-Za-z0-9+/=_.-]`: anything else (spaces, quotes, `:`, `,`, braces)
/// separates, so that `"SecretAccessKey":"..."` of a credential process's JSON on stderr and a
/// JWT (`xxx.yyy.zzz`) are caught too. Names of environment variables
/// (`AWS_EC2_METADATA_DISABLED`: capitals, digits and `_`) stay: they are the reason a user
/// needs, and no AWS key id, secret key or token has that shape (key ids have no `_`; secret
/// keys and tokens are mixed case).
pub(crate) fn scrub(text: &str) -> String {
    let key_char = |c: char| c.is_ascii_alphanumeric() || "+/=_.-".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !key_char(c)).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(end);
        out.push_str(&scrub_word(word));
        let sep = tail.chars().next().map_or(0, char::len_utf8);
        out.push_str(&tail[..sep]);
        rest = &tail[sep..];
    }
    out
}

/// `word` (only key characters), or `****` in place of its core when it looks like a key.
fn scrub_word(word: &str) -> String {
    // Sentence punctuation around a word ("... is invalid.") is not part of it.
    let core = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let variable = core.contains('_')
        && core
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    // A file path or a host's URL has both '.' and '/'; a JWT (base64url) has no '/', a secret
    // access key (base64) no '.'.
    let path = core.contains('.') && core.contains('/');
    let keyish = !variable
        && !path
        && core.len() >= 16
        && core.bytes().any(|b| b.is_ascii_digit())
        && core.bytes().any(|b| b.is_ascii_uppercase());
    if keyish {
        word.replace(core, "****")
    } else {
        word.to_owned()
    }
}

impl ProvideCredentials for Chain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move { self.resolve().await.map(|(c, _)| c) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_keys_and_tokens_but_keeps_words() {
        let t = "AKIAIOSFODNN7EXAMPLE is not valid; file /var/run/token missing";
        let s = scrub(t);
        assert!(!s.contains("AKIAIOSFODNN7EXAMPLE"), "{s}");
        assert!(s.contains("/var/run/token missing"));
        assert!(!scrub("secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").contains("wJalrXUtnFEMI"));
        // aws-config's reason for a skipped IMDS names the variable: the user needs it.
        let imds = "IMDS disabled by AWS_EC2_METADATA_DISABLED env var set to `true`";
        assert_eq!(scrub(imds), imds);
        // A key id is all capitals and digits, but never has an underscore.
        assert!(!scrub("key AKIAIOSFODNN7EXAMPLE_").contains("AKIAIOSFODNN7EXAMPLE"));
    }

    #[test]
    fn scrub_hides_keys_inside_json_and_jwts_from_a_credential_process() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let json = format!(r#"bad output: {{"Version":1,"SecretAccessKey":"{secret}"}}"#);
        let s = scrub(&json);
        assert!(!s.contains("wJalrXUtnFEMI"), "{s}");
        assert!(s.contains(r#""SecretAccessKey":"****""#), "{s}");
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmhnIn0.c2lnbmF0dXJlLXBhcnQtMTIzNDU2Nzg";
        let s = scrub(&format!("token {jwt}: expired"));
        assert!(!s.contains("eyJzdWIi"), "{s}");
        assert!(!s.contains("c2lnbmF0dXJl"), "{s}");
        assert!(s.ends_with(": expired"), "{s}");
        // Paths and sentences are kept as they were.
        let plain = "cannot read /var/run/secrets/eks.amazonaws.com/token: No such file";
        assert_eq!(scrub(plain), plain);
        let home = "cannot read /home/CI2024user/.aws/credentials-2024";
        assert_eq!(scrub(home), home);
    }

    #[test]
    fn no_credentials_lists_each_source_with_its_reason() {
        let e = NoCredentials {
            reasons: vec![
                (
                    SourceKind::Environment,
                    "AWS_ACCESS_KEY_ID is not set".into(),
                ),
                (
                    SourceKind::InstanceProfile,
                    "AWS_EC2_METADATA_DISABLED is true".into(),
                ),
            ],
        };
        assert_eq!(
            e.to_string(),
            "no AWS credentials: environment: AWS_ACCESS_KEY_ID is not set; instance-profile: AWS_EC2_METADATA_DISABLED is true"
        );
    }

    #[test]
    fn seal_ids_follow_the_chain_order() {
        let ids: Vec<&str> = SourceKind::ALL.iter().map(|k| k.seal_id()).collect();
        assert_eq!(ids, SEAL_IDS);
    }
}
