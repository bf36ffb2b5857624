//! Temporary AWS credentials (key id, secret key, session token, expiry) shared by this user's
//! processes in the kernel keyring, as Entra tokens are ([`crate::token_cache`]), so that a warm
//! `hg pull` sends exactly one request (GetSecretValue): no STS, no container endpoint, no IMDS.
//!
//! - The key hashes everything that decides which credentials the chain would get: the profile,
//!   its files' paths and a digest of their content, a digest of `AWS_ACCESS_KEY_ID` (keys set
//!   later must win over a role's cached ones, as the chain's order says), `AWS_ROLE_ARN`, the web identity token file's path and a digest of its
//!   content, the container endpoint, the IMDS endpoint, the STS endpoint, the region.
//! - Entries are sealed ([`crate::cache_seal`]) under the material of the source that got them:
//!   the web identity token file, the container authorization token (or its file), the profile's
//!   files; the instance profile has none (every process reaching IMDS gets the same
//!   credentials; documented as obfuscation in docs/security.md). Other processes of the uid
//!   without that material learn nothing.
//! - Fresh until the expiry minus 5 minutes (or half the remaining lifetime when shorter); the
//!   kernel key expires then too.
//! - Static keys (environment, a profile's `aws_access_key_id`) have no expiry and are never
//!   cached: they are read locally anyway.
//! - One fetch at a time per key across this user's processes ([`crate::cache_lock`], as for
//!   Entra tokens): when 8 CI steps start together with nothing cached, one calls STS (or the
//!   container endpoint, IMDS, the credential process) and the others find its credentials in
//!   the kernel keyring once the lock is theirs. Waiting is bounded (half the timeout, at most
//!   5 s); past it a process fetches on its own.

use super::identity::{Answered, Chain, SourceKind};
use crate::cache_lock::LockDir;
use crate::cache_seal::{CacheSeal, Material, Purpose};
use crate::kernel_keys::KernelKeys;
use crate::store::{CacheStore, TokenSource};
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_credential_types::Credentials;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Longest margin between the end of use here and the credentials' expiry.
const MAX_MARGIN: Duration = Duration::from_secs(300);

/// Longest wait for another process's fetch (the token cache's bound).
const MAX_LOCK_WAIT: Duration = Duration::from_secs(5);

#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    v: u8,
    akid: String,
    secret: String,
    token: Option<String>,
    expires: i64,
    fresh_until: i64,
    source: String,
    label: String,
}

impl zeroize::Zeroize for Payload {
    fn zeroize(&mut self) {
        self.secret.zeroize();
        if let Some(t) = &mut self.token {
            t.zeroize();
        }
    }
}

/// Variables whose values are part of the key as they are. The Secrets Manager endpoint too:
/// the key also namespaces the secret cache, and another endpoint is another store.
const KEY_VARIABLES: [&str; 11] = [
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
];

/// The chain's inputs that decide its credentials (read from the environment at build time).
#[derive(Default)]
pub(crate) struct CacheInputs {
    lines: Vec<(String, String)>,
    profile_files: Vec<PathBuf>,
    web_identity_file: Option<PathBuf>,
    container_token_file: Option<PathBuf>,
    container_token: Option<Zeroizing<String>>,
    /// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`: the task's own path on the ECS agent.
    container_relative_uri: Option<Zeroizing<String>>,
}

/// Names only: the container token (and the lines' values, which hold its digest) stay out of
/// any debug output, as [`CacheSeal`]'s.
impl std::fmt::Debug for CacheInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<&str> = self.lines.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("CacheInputs")
            .field("lines", &lines)
            .field("profile_files", &self.profile_files)
            .field("web_identity_file", &self.web_identity_file)
            .field("container_token_file", &self.container_token_file)
            .field(
                "container_token",
                &self.container_token.as_ref().map(|_| "****"),
            )
            .field(
                "container_relative_uri",
                &self.container_relative_uri.as_ref().map(|_| "****"),
            )
            .finish()
    }
}

impl CacheInputs {
    /// From the process environment, the profile's facts and the region.
    pub(crate) fn from_env(profile: &super::identity::ProfileFacts, region: &str) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = var("HOME").map(PathBuf::from).unwrap_or_default();
        let config = var("AWS_CONFIG_FILE").map_or_else(|| home.join(".aws/config"), PathBuf::from);
        let creds = var("AWS_SHARED_CREDENTIALS_FILE")
            .map_or_else(|| home.join(".aws/credentials"), PathBuf::from);
        let mut lines: Vec<(String, String)> = vec![
            ("provider".into(), "aws".into()),
            ("region".into(), region.into()),
            ("profile".into(), profile.name.clone()),
            ("config".into(), config.display().to_string()),
            ("credentials".into(), creds.display().to_string()),
        ];
        for k in KEY_VARIABLES {
            lines.push((k.into(), var(k).unwrap_or_default()));
        }
        // Local sources come first in the chain: environment keys or a profile's static keys
        // set after a role's credentials were cached must win over them (and name another
        // secret cache), so the key id (hashed: no need to put it in a key description) and the
        // profile files' content are part of the key.
        if let Some(akid) = var("AWS_ACCESS_KEY_ID") {
            lines.push((
                "AWS_ACCESS_KEY_ID".into(),
                hex::encode(Sha256::digest(akid.as_bytes())),
            ));
        }
        for (name, file) in [("config-content", &config), ("credentials-content", &creds)] {
            let content = Zeroizing::new(std::fs::read(file).unwrap_or_default());
            lines.push((name.into(), hex::encode(Sha256::digest(&*content))));
        }
        let web_identity_file = var("AWS_WEB_IDENTITY_TOKEN_FILE")
            .or_else(|| profile.web_identity_token_file.clone())
            .map(PathBuf::from);
        if let Some(f) = &web_identity_file {
            let content = Zeroizing::new(std::fs::read(f).unwrap_or_default());
            lines.push((
                "web-identity-token".into(),
                hex::encode(Sha256::digest(&*content)),
            ));
        }
        let container_token = var("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Zeroizing::new);
        if let Some(t) = &container_token {
            lines.push((
                "container-token".into(),
                hex::encode(Sha256::digest(t.as_bytes())),
            ));
        }
        CacheInputs {
            lines,
            profile_files: vec![config, creds],
            web_identity_file,
            container_token_file: var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").map(PathBuf::from),
            container_token,
            container_relative_uri: var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                .map(Zeroizing::new),
        }
    }

    fn key(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in &self.lines {
            h.update(k.as_bytes());
            h.update(b"=");
            h.update(v.as_bytes());
            h.update(b"\n");
        }
        hex::encode(&h.finalize()[..16])
    }

    fn seal(&self) -> CacheSeal {
        let mut links = vec![(
            SourceKind::Profile.seal_id(),
            Material::Files(
                self.profile_files
                    .iter()
                    .cloned()
                    .chain(self.web_identity_file.clone())
                    .collect(),
            ),
        )];
        if let Some(f) = &self.web_identity_file {
            links.push((
                SourceKind::WebIdentity.seal_id(),
                Material::Files(vec![f.clone()]),
            ));
        }
        // On ECS the agent hands out a task's credentials to whoever asks for the task's own
        // relative URI (a per-task UUID, no token): that path is the material another task on
        // the same host (same uid, no user namespace) lacks.
        let container = match (
            &self.container_token_file,
            &self.container_token,
            &self.container_relative_uri,
        ) {
            (Some(f), _, _) => Material::Files(vec![f.clone()]),
            (None, Some(t), _) => Material::Value(t.clone()),
            (None, None, Some(uri)) => Material::Value(uri.clone()),
            (None, None, None) => Material::Public,
        };
        links.push((SourceKind::Container.seal_id(), container));
        links.push((SourceKind::InstanceProfile.seal_id(), Material::Public));
        CacheSeal::from_materials(links)
    }
}

/// The chain behind the cross-process cache; this is the SDK's credentials provider.
pub(crate) struct CachedChain {
    chain: Arc<Chain>,
    key: String,
    seal: CacheSeal,
    kernel: Option<KernelKeys>,
    /// The cross-process fetch locks (only with the kernel keyring: without it nobody could
    /// find what the lock holder fetched).
    locks: Option<LockDir>,
    lock_wait: Duration,
    /// One fetch at a time in this process too (parallel reads of `hg vault`).
    fetching: futures::lock::Mutex<()>,
    memory: Mutex<Option<(Credentials, Answered, SystemTime)>>,
    last: Mutex<Option<TokenSource>>,
}

impl std::fmt::Debug for CachedChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedChain")
            .field("key", &self.key)
            .field("chain", &self.chain)
            .finish_non_exhaustive()
    }
}

impl CachedChain {
    /// `chain` behind the cache keyed and sealed by `inputs`; `shared` = `keyvault.token-cache`;
    /// `timeout` = `keyvault.timeout` (a wait for another process's fetch takes half at most).
    pub(crate) fn new(
        chain: Arc<Chain>,
        inputs: &CacheInputs,
        shared: bool,
        timeout: Duration,
    ) -> Self {
        let kernel = if shared { KernelKeys::open() } else { None };
        Self {
            chain,
            key: inputs.key(),
            seal: inputs.seal(),
            locks: kernel.as_ref().and_then(|_| LockDir::open()),
            kernel,
            lock_wait: (timeout / 2).min(MAX_LOCK_WAIT),
            fetching: futures::lock::Mutex::new(()),
            memory: Mutex::new(None),
            last: Mutex::new(None),
        }
    }

    /// The chain (which source answered).
    pub(crate) fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    /// The hash naming this identity (also namespaces the secret cache).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Where credentials are cached.
    pub(crate) fn store(&self) -> CacheStore {
        if self.kernel.is_some() {
            CacheStore::KernelKeyring
        } else {
            CacheStore::Process
        }
    }

    /// Where the credentials of the last request came from.
    pub(crate) fn last_source(&self) -> Option<TokenSource> {
        self.last.lock().ok().and_then(|l| *l)
    }

    fn description(&self) -> String {
        format!("hg-keyvault:aws-credentials:{}", self.key)
    }

    /// The lock file's name: apart from the Entra token locks (their keys hash other inputs).
    fn lock_name(&self) -> String {
        format!("aws-credentials-{}", self.key)
    }

    fn note(&self, source: TokenSource) {
        if let Ok(mut l) = self.last.lock() {
            *l = Some(source);
        }
    }

    fn fresh(&self) -> Option<Credentials> {
        let now = SystemTime::now();
        if let Some((creds, answered, until)) = self.memory.lock().ok().and_then(|m| m.clone()) {
            if now < until {
                self.chain.adopt(answered);
                self.note(TokenSource::Cache(to_offset(until)));
                return Some(creds);
            }
        }
        let kernel = self.kernel.as_ref()?;
        let description = self.description();
        let sealed = kernel.read(&description)?;
        let (link, raw) = self.seal.open(Purpose::Token, &description, &sealed)?;
        let p = Zeroizing::new(serde_json::from_slice::<Payload>(&raw).ok()?);
        let kind = SourceKind::ALL.into_iter().find(|k| k.seal_id() == link)?;
        let until =
            SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(p.fresh_until).ok()?);
        let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(p.expires).ok()?);
        if p.v != 1 || now >= until || p.source != link {
            return None;
        }
        let creds = Credentials::new(
            p.akid.clone(),
            p.secret.clone(),
            p.token.clone(),
            Some(expires),
            "hg-keyvault-cache",
        );
        let answered = Answered {
            kind,
            label: p.label.clone(),
        };
        self.chain.adopt(answered.clone());
        if let Ok(mut m) = self.memory.lock() {
            *m = Some((creds.clone(), answered, until));
        }
        self.note(TokenSource::Cache(to_offset(until)));
        Some(creds)
    }

    fn keep(&self, creds: &Credentials, answered: &Answered) {
        let Some(expires) = creds.expiry() else {
            return; // static keys: nothing to share
        };
        let now = SystemTime::now();
        let Ok(left) = expires.duration_since(now) else {
            return;
        };
        let until = expires - MAX_MARGIN.min(left / 2);
        self.note(TokenSource::Fetched(to_offset(until)));
        if let Ok(mut m) = self.memory.lock() {
            *m = Some((creds.clone(), answered.clone(), until));
        }
        let (Some(kernel), Ok(ttl)) = (&self.kernel, until.duration_since(now)) else {
            return;
        };
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
        };
        let payload = Zeroizing::new(Payload {
            v: 1,
            akid: creds.access_key_id().to_owned(),
            secret: creds.secret_access_key().to_owned(),
            token: creds.session_token().map(str::to_owned),
            expires: secs(expires),
            fresh_until: secs(until),
            source: answered.kind.seal_id().to_owned(),
            label: answered.label.clone(),
        });
        let Ok(bytes) = serde_json::to_vec(&*payload).map(Zeroizing::new) else {
            return;
        };
        let description = self.description();
        if let Some(sealed) = self.seal.seal(
            answered.kind.seal_id(),
            Purpose::Token,
            &description,
            &bytes,
        ) {
            kernel.write(&description, &sealed, ttl);
        }
    }

    /// Drops the shared entry (the service refused the credentials as expired or unknown).
    pub(crate) fn forget(&self) {
        if let Ok(mut m) = self.memory.lock() {
            *m = None;
        }
        if let Some(k) = &self.kernel {
            k.remove(&self.description());
        }
    }

    async fn credentials(&self) -> aws_credential_types::provider::Result {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let _local = self.fetching.lock().await;
        let _file = match &self.locks {
            Some(dir) => dir.lock(&self.lock_name(), self.lock_wait).await,
            None => None,
        };
        // Whoever held the lock before may have fetched and cached them meanwhile.
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let (creds, answered) = self.chain.resolve().await?;
        self.keep(&creds, &answered);
        Ok(creds)
    }

    /// The source id whose material seals a cached value (the secret cache's entries).
    pub(crate) fn selected_seal_id(&self) -> Option<&'static str> {
        self.chain.answered().map(|a| a.kind.seal_id())
    }

    /// The seal (shared with the secret cache).
    pub(crate) fn seal_for_secrets(inputs: &CacheInputs) -> CacheSeal {
        inputs.seal()
    }
}

fn to_offset(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

impl ProvideCredentials for CachedChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_the_role_and_the_token_file_content() {
        let facts = super::super::identity::ProfileFacts {
            name: "default".into(),
            ..Default::default()
        };
        let a = CacheInputs::from_env(&facts, "eu-west-1");
        let b = CacheInputs::from_env(&facts, "us-east-1");
        assert_ne!(a.key(), b.key(), "the region is part of the key");
        let mut c = CacheInputs::from_env(&facts, "eu-west-1");
        c.lines
            .push(("AWS_ROLE_ARN".into(), "arn:aws:iam::1:role/other".into()));
        assert_ne!(a.key(), c.key());
    }

    #[test]
    fn every_endpoint_the_sdk_reads_is_part_of_the_key() {
        for v in [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_STS",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        ] {
            assert!(KEY_VARIABLES.contains(&v), "{v}");
        }
    }

    #[test]
    fn debug_output_names_the_inputs_without_the_container_token() {
        let token = "ecs-auth-s3cr3t-token-value";
        let inputs = CacheInputs {
            lines: vec![("container-token".into(), "digest-of-it".into())],
            container_token: Some(Zeroizing::new(token.into())),
            container_relative_uri: Some(Zeroizing::new("/v2/credentials/task-uuid".into())),
            ..Default::default()
        };
        let text = format!("{inputs:?}");
        assert!(text.contains("container_token"), "{text}");
        assert!(text.contains("container-token"), "{text}");
        assert!(!text.contains(token), "{text}");
        assert!(!text.contains("digest-of-it"), "{text}");
        assert!(!text.contains("task-uuid"), "{text}");
    }

    #[test]
    fn an_ecs_task_without_a_token_seals_under_its_relative_uri() {
        let id = SourceKind::Container.seal_id();
        let task = |uri: &str| CacheInputs {
            container_relative_uri: Some(Zeroizing::new(uri.into())),
            ..Default::default()
        };
        let ours = task("/v2/credentials/11111111-aaaa").seal();
        let sealed = ours.seal(id, Purpose::Token, "d", b"creds").unwrap();
        assert!(ours.open(Purpose::Token, "d", &sealed).is_some());
        // Another task (its own UUID) and a process with no container variables learn nothing.
        let other = task("/v2/credentials/22222222-bbbb").seal();
        assert!(other.open(Purpose::Token, "d", &sealed).is_none());
        let bare = CacheInputs::default().seal();
        assert!(bare.open(Purpose::Token, "d", &sealed).is_none());
    }

    #[test]
    fn a_sealed_entry_opens_only_with_the_same_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "jwt-1").unwrap();
        let inputs = CacheInputs {
            web_identity_file: Some(file.clone()),
            ..Default::default()
        };
        let id = SourceKind::WebIdentity.seal_id();
        let sealed = inputs
            .seal()
            .seal(id, Purpose::Token, "d", b"creds")
            .unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"creds"));
        assert!(inputs.seal().open(Purpose::Token, "d", &sealed).is_some());
        std::fs::write(&file, "jwt-2").unwrap();
        assert!(inputs.seal().open(Purpose::Token, "d", &sealed).is_none());
    }
}
