//! The Secrets Manager operations of the store: refs in, bytes out, every outcome one
//! [`Error`], every operation bounded by `keyvault.timeout` as a whole (credential loading,
//! retries and paging included).
//!
//! Versions: `get(ref, Some(v))` reads the version id `v` when `v` looks like one (32-64
//! characters of hex digits and '-', the shape of Secrets Manager's UUID version ids), else the
//! staging label `v` (`AWSCURRENT`, `AWSPREVIOUS`, `AWSPENDING` or a label of your own).
//! Values: UTF-8 values are stored as `SecretString` (readable by every AWS tool), others as
//! `SecretBinary`; reads return the bytes of either.

use super::credential_cache::CachedChain;
use super::errors::{self, classify, ErrorContext};
use super::http_client::InFlight;
use super::names::{check_new_name, check_tags, check_value_size, secret_id, AwsPrefix};
use super::region::RegionSources;
use crate::error::{Error, ErrorKind, Result};
use crate::secret::SecretValue;
use crate::secret_ref::SecretRef;
use crate::store::{Deleted, Secret, SecretProperties, SetOptions, REF_TAG};
use aws_config::SdkConfig;
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueOutput;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_secretsmanager::Client;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// Tag holding an expiry given to `hg vault set --expires` (Secrets Manager has none of its own):
/// reported by `hg vault`, not enforced by the service.
pub const EXPIRES_TAG: &str = "hg-keyvault-expires";

/// Days a deleted secret can still be restored (`DeleteSecret`'s `RecoveryWindowInDays`, 7-30).
pub const RECOVERY_WINDOW_DAYS: i64 = 7;

/// Page size of ListSecrets / ListSecretVersionIds (the API's maximum is 100).
const PAGE_SIZE: i32 = 100;

/// The async store over one base SDK config; one client per region, made on first use.
pub(crate) struct AwsStore {
    pub(crate) sdk: SdkConfig,
    pub(crate) regions: RegionSources,
    pub(crate) prefix: AwsPrefix,
    pub(crate) timeout: Duration,
    pub(crate) credentials: Arc<CachedChain>,
    pub(crate) in_flight: InFlight,
    pub(crate) clients: Mutex<HashMap<String, Client>>,
}

impl std::fmt::Debug for AwsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsStore")
            .field("regions", &self.regions)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// One operation's target: the id to send, the client of its region, and the error context.
struct Target {
    id: String,
    client: Client,
    ctx: ErrorContext,
}

fn time_of(t: Option<&aws_smithy_types::DateTime>) -> Option<OffsetDateTime> {
    t.and_then(|d| OffsetDateTime::from_unix_timestamp(d.secs()).ok())
}

fn tags_of(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn expires_of(tags: &BTreeMap<String, String>) -> Option<OffsetDateTime> {
    let v = tags.get(EXPIRES_TAG)?;
    OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()
}

/// The endpoint a service's requests go to, as the SDK picks it: `AWS_ENDPOINT_URL_<SERVICE>`,
/// `AWS_ENDPOINT_URL`, else the service's regional endpoint; as shown ([`shown_endpoint`]).
pub(crate) fn endpoint_of(env_suffix: &str, host: &str, region: &str) -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    var(&format!("AWS_ENDPOINT_URL_{env_suffix}"))
        .or_else(|| var("AWS_ENDPOINT_URL"))
        .map_or_else(
            || format!("https://{host}.{region}.amazonaws.com"),
            |url| shown_endpoint(&url),
        )
}

/// An endpoint URL for messages and `hg vault`: without userinfo, query or fragment (a proxy
/// or gateway URL may carry a password or a key there); as given when it has none.
fn shown_endpoint(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.username().is_empty() && u.password().is_none() => {
            if u.query().is_none() && u.fragment().is_none() {
                url.to_owned()
            } else {
                crate::transport::display_url(&u)
            }
        }
        Ok(u) => crate::transport::display_url(&u),
        Err(_) => "(an endpoint URL that does not parse)".to_owned(),
    }
}

/// Whether `v` names a version id rather than a staging label.
pub(crate) fn is_version_id(v: &str) -> bool {
    (32..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

impl AwsStore {
    /// The endpoint as messages show it.
    pub(crate) fn endpoint(&self, region: &str) -> String {
        endpoint_of("SECRETS_MANAGER", "secretsmanager", region)
    }

    /// The client of `region`.
    pub(crate) fn client(&self, region: &str) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let conf = aws_sdk_secretsmanager::config::Builder::from(&self.sdk)
                    .region(aws_config::Region::new(region.to_owned()))
                    .build();
                Client::from_conf(conf)
            })
            .clone()
    }

    fn subject(&self, secret_ref: &SecretRef, id: &str) -> String {
        if secret_ref.is_path() {
            format!("secret {secret_ref} ({id})")
        } else {
            format!("secret {secret_ref}")
        }
    }

    fn target(&self, secret_ref: &SecretRef, action: &'static str) -> Result<Target> {
        let id = secret_id(secret_ref, &self.prefix)?;
        let subject = self.subject(secret_ref, &id);
        let region = self.regions.region_for(secret_ref, &subject)?;
        let client = self.client(&region);
        let ctx = ErrorContext {
            action,
            resource: if secret_ref.arn().is_some() {
                id.clone()
            } else {
                format!("the secret named {id}")
            },
            subject,
            endpoint: self.endpoint(&region),
            region,
            timeout: self.timeout,
        };
        Ok(Target { id, client, ctx })
    }

    /// ListSecrets' client and error context: it runs in the default region (there is no ref
    /// to take one from); `purpose` names what needed a region when none is configured.
    fn list_target(&self, purpose: &str) -> Result<(Client, ErrorContext)> {
        let region = self
            .regions
            .default_region()
            .ok_or_else(|| errors::no_region(purpose))?
            .to_owned();
        let client = self.client(&region);
        let ctx = ErrorContext {
            action: "secretsmanager:ListSecrets",
            subject: format!("the secrets of {region}"),
            resource: "*".to_owned(),
            endpoint: self.endpoint(&region),
            region,
            timeout: self.timeout,
        };
        Ok((client, ctx))
    }

    /// Runs `op` within the timeout; a late answer is a timeout naming the request in flight.
    pub(crate) async fn bounded<T>(
        &self,
        ctx: &ErrorContext,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if let Ok(mut g) = self.in_flight.lock() {
            *g = None;
        }
        match tokio::time::timeout(self.timeout, op).await {
            Ok(r) => r.inspect_err(|e| self.on_error(e)),
            Err(_) => {
                let in_flight = self.in_flight.lock().ok().and_then(|g| g.clone());
                Err(errors::timeout(ctx, in_flight))
            }
        }
    }

    fn on_error(&self, e: &Error) {
        // Credentials the service refused must not be served from the cache again.
        if e.kind() == ErrorKind::Unauthenticated {
            self.credentials.forget();
        }
    }

    /// The current value (or a version id's / a staging label's).
    pub(crate) async fn get(
        &self,
        secret_ref: &SecretRef,
        version: Option<&str>,
    ) -> Result<Secret> {
        let t = self.target(secret_ref, "secretsmanager:GetSecretValue")?;
        self.bounded(&t.ctx, async {
            let mut req = t.client.get_secret_value().secret_id(&t.id);
            match version {
                Some(v) if is_version_id(v) => req = req.version_id(v),
                Some(v) => req = req.version_stage(v),
                None => {}
            }
            let out = req.send().await.map_err(|e| classify(&e, &t.ctx))?;
            let bytes = match (out.secret_string(), out.secret_binary()) {
                (Some(s), _) => s.as_bytes().to_vec(),
                (None, Some(b)) => b.as_ref().to_vec(),
                (None, None) => {
                    return Err(Error::new(
                        ErrorKind::Service,
                        format!(
                            "{} has no value (neither SecretString nor SecretBinary)",
                            t.ctx.subject
                        ),
                    )
                    .with_hint("store one with `hg vault set REF`"))
                }
            };
            let properties = SecretProperties {
                secret_ref: secret_ref.is_path().then(|| secret_ref.as_str().to_owned()),
                name: out.name().unwrap_or(&t.id).to_owned(),
                version: out.version_id().map(str::to_owned),
                id: out.arn().map(str::to_owned),
                enabled: true,
                created: time_of(out.created_date()),
                ..Default::default()
            };
            Ok(Secret {
                value: SecretValue::new(bytes),
                properties,
            })
        })
        .await
    }

    /// A new version (AWSCURRENT moves to it, the old one becomes AWSPREVIOUS); creates the
    /// secret with its tags when it does not exist yet.
    pub(crate) async fn set(
        &self,
        secret_ref: &SecretRef,
        value: &SecretValue,
        options: SetOptions,
    ) -> Result<SecretProperties> {
        let t = self.target(secret_ref, "secretsmanager:PutSecretValue")?;
        check_value_size(value.expose().len(), &t.ctx.subject)?;
        let mut tags = options.tags.clone();
        if secret_ref.is_path() {
            tags.insert(REF_TAG.to_owned(), secret_ref.as_str().to_owned());
        }
        if let Some(exp) = options.expires {
            let text = exp
                .format(&time::format_description::well_known::Rfc3339)
                .map_err(|e| Error::bad_config(format!("cannot format the expiry: {e}")))?;
            tags.insert(EXPIRES_TAG.to_owned(), text);
        }
        check_tags(&tags, &t.ctx.subject)?;
        let aws_tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let text = std::str::from_utf8(value.expose()).ok();
        self.bounded(&t.ctx, async {
            let put_value = || {
                let put = t.client.put_secret_value().secret_id(&t.id);
                match text {
                    Some(s) => put.secret_string(s),
                    None => put.secret_binary(Blob::new(value.expose().to_vec())),
                }
                .send()
            };
            let stored = |out: PutSecretValueOutput| {
                (
                    out.name().map(str::to_owned),
                    out.version_id().map(str::to_owned),
                    out.arn().map(str::to_owned),
                )
            };
            let (name, version, arn) = match put_value().await {
                Ok(out) => stored(out),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception())
                        && secret_ref.is_path() =>
                {
                    check_new_name(&t.id, secret_ref)?;
                    let ctx = ErrorContext {
                        action: "secretsmanager:CreateSecret",
                        ..t.ctx.clone()
                    };
                    let mut create = t
                        .client
                        .create_secret()
                        .name(&t.id)
                        .set_tags(Some(aws_tags.clone()));
                    create = match text {
                        Some(s) => create.secret_string(s),
                        None => create.secret_binary(Blob::new(value.expose().to_vec())),
                    };
                    match create.send().await {
                        Ok(out) => {
                            return Ok(SecretProperties {
                                secret_ref: secret_ref
                                    .is_path()
                                    .then(|| secret_ref.as_str().to_owned()),
                                name: out.name().unwrap_or(&t.id).to_owned(),
                                version: out.version_id().map(str::to_owned),
                                id: out.arn().map(str::to_owned),
                                enabled: true,
                                expires: options.expires,
                                tags,
                                ..Default::default()
                            })
                        }
                        // Another first-time `set` created it since our PutSecretValue: ours
                        // becomes its next version (one more try, within the same deadline),
                        // tagged as any update.
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|s| s.is_resource_exists_exception()) =>
                        {
                            stored(put_value().await.map_err(|e| classify(&e, &t.ctx))?)
                        }
                        Err(e) => return Err(classify(&e, &ctx)),
                    }
                }
                Err(e) => return Err(classify(&e, &t.ctx)),
            };
            // The ref tag was set at creation (a secret's name and ref do not change): only
            // the caller's tags and the expiry are updated.
            let update: Vec<Tag> = aws_tags
                .iter()
                .filter(|t| t.key() != Some(REF_TAG))
                .cloned()
                .collect();
            if !update.is_empty() {
                let ctx = ErrorContext {
                    action: "secretsmanager:TagResource",
                    ..t.ctx.clone()
                };
                t.client
                    .tag_resource()
                    .secret_id(&t.id)
                    .set_tags(Some(update))
                    .send()
                    .await
                    .map_err(|e| classify(&e, &ctx))?;
            }
            // A new version without --expires has none (as a new Key Vault version): the
            // previous version's expiry tag must not stay and make `hg vault` warn about it.
            if options.expires.is_none() {
                let ctx = ErrorContext {
                    action: "secretsmanager:UntagResource",
                    ..t.ctx.clone()
                };
                t.client
                    .untag_resource()
                    .secret_id(&t.id)
                    .tag_keys(EXPIRES_TAG)
                    .send()
                    .await
                    .map_err(|e| classify(&e, &ctx))?;
            }
            Ok(SecretProperties {
                secret_ref: secret_ref.is_path().then(|| secret_ref.as_str().to_owned()),
                name: name.unwrap_or_else(|| t.id.clone()),
                version,
                id: arn,
                enabled: true,
                expires: options.expires,
                tags,
                ..Default::default()
            })
        })
        .await
    }

    /// DescribeSecret: the secret's tags, dates and current version.
    pub(crate) async fn properties(&self, secret_ref: &SecretRef) -> Result<SecretProperties> {
        let t = self.target(secret_ref, "secretsmanager:DescribeSecret")?;
        self.bounded(&t.ctx, async {
            let out = t
                .client
                .describe_secret()
                .secret_id(&t.id)
                .send()
                .await
                .map_err(|e| classify(&e, &t.ctx))?;
            if out.deleted_date().is_some() {
                return Err(errors::by_code(
                    "InvalidRequestException",
                    "marked for deletion",
                    &t.ctx,
                ));
            }
            let tags = tags_of(out.tags());
            let current = out.version_ids_to_stages().and_then(|m| {
                m.iter()
                    .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
                    .map(|(v, _)| v.clone())
            });
            Ok(SecretProperties {
                secret_ref: tags.get(REF_TAG).cloned(),
                name: out.name().unwrap_or(&t.id).to_owned(),
                version: current,
                id: out.arn().map(str::to_owned),
                enabled: true,
                expires: expires_of(&tags),
                created: time_of(out.created_date()),
                updated: time_of(out.last_changed_date()),
                tags,
                ..Default::default()
            })
        })
        .await
    }

    /// ListSecretVersionIds, every page; oldest first, AWSCURRENT last.
    pub(crate) async fn versions(&self, secret_ref: &SecretRef) -> Result<Vec<SecretProperties>> {
        let t = self.target(secret_ref, "secretsmanager:ListSecretVersionIds")?;
        self.bounded(&t.ctx, async {
            let mut out = Vec::new();
            let mut next: Option<String> = None;
            loop {
                let page = t
                    .client
                    .list_secret_version_ids()
                    .secret_id(&t.id)
                    .max_results(PAGE_SIZE)
                    .set_next_token(next.take())
                    .send()
                    .await
                    .map_err(|e| classify(&e, &t.ctx))?;
                for v in page.versions() {
                    let current = v.version_stages().iter().any(|s| s == "AWSCURRENT");
                    out.push((
                        current,
                        SecretProperties {
                            secret_ref: secret_ref
                                .is_path()
                                .then(|| secret_ref.as_str().to_owned()),
                            name: page.name().unwrap_or(&t.id).to_owned(),
                            version: v.version_id().map(str::to_owned),
                            id: page.arn().map(str::to_owned),
                            enabled: !v.version_stages().is_empty(),
                            created: time_of(v.created_date()),
                            ..Default::default()
                        },
                    ));
                }
                match page.next_token() {
                    Some(tok) if !tok.is_empty() => next = Some(tok.to_owned()),
                    _ => break,
                }
            }
            out.sort_by_key(|(current, p)| (*current, p.created));
            Ok(out.into_iter().map(|(_, p)| p).collect())
        })
        .await
    }

    /// ListSecrets in the default region, every page; managed ones carry their ref.
    pub(crate) async fn list(&self) -> Result<Vec<SecretProperties>> {
        let (client, ctx) = self.list_target("listing secrets")?;
        self.bounded(&ctx, async {
            let mut out = Vec::new();
            let mut next: Option<String> = None;
            loop {
                // Forgotten secrets too: they are restorable until their deletion date, and
                // `hg vault list` says so (ListSecrets hides them by default).
                let page = client
                    .list_secrets()
                    .include_planned_deletion(true)
                    .max_results(PAGE_SIZE)
                    .set_next_token(next.take())
                    .send()
                    .await
                    .map_err(|e| classify(&e, &ctx))?;
                for s in page.secret_list() {
                    let tags = tags_of(s.tags());
                    out.push(SecretProperties {
                        secret_ref: tags.get(REF_TAG).cloned(),
                        name: s.name().unwrap_or_default().to_owned(),
                        id: s.arn().map(str::to_owned),
                        enabled: true,
                        expires: expires_of(&tags),
                        created: time_of(s.created_date()),
                        updated: time_of(s.last_changed_date()),
                        tags,
                        scheduled_deletion: time_of(s.deleted_date()),
                        ..Default::default()
                    });
                }
                match page.next_token() {
                    Some(tok) if !tok.is_empty() => next = Some(tok.to_owned()),
                    _ => break,
                }
            }
            Ok(out)
        })
        .await
    }

    /// DeleteSecret with a recovery window: restorable until the returned purge date.
    pub(crate) async fn delete(&self, secret_ref: &SecretRef) -> Result<Deleted> {
        let t = self.target(secret_ref, "secretsmanager:DeleteSecret")?;
        self.bounded(&t.ctx, async {
            let out = t
                .client
                .delete_secret()
                .secret_id(&t.id)
                .recovery_window_in_days(RECOVERY_WINDOW_DAYS)
                .send()
                .await
                .map_err(|e| classify(&e, &t.ctx))?;
            Ok(Deleted {
                name: out.name().unwrap_or(&t.id).to_owned(),
                recoverable: true,
                scheduled_purge: time_of(out.deletion_date()),
            })
        })
        .await
    }

    /// One ListSecrets call of one entry: the service answers and accepts the credentials.
    pub(crate) async fn ping(&self) -> Result<()> {
        let (client, ctx) = self.list_target("the store")?;
        self.bounded(&ctx, async {
            client
                .list_secrets()
                .max_results(1)
                .send()
                .await
                .map_err(|e| classify(&e, &ctx))?;
            Ok(())
        })
        .await
    }

    /// sts:GetCallerIdentity: `(arn, account, user id)`.
    pub(crate) async fn caller(&self) -> Result<(String, String, String)> {
        let region = self
            .regions
            .default_region()
            .unwrap_or("us-east-1")
            .to_owned();
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&self.sdk)
                .region(aws_config::Region::new(region.clone()))
                .build(),
        );
        let ctx = ErrorContext {
            action: "sts:GetCallerIdentity",
            subject: "the caller identity".to_owned(),
            resource: "*".to_owned(),
            endpoint: endpoint_of("STS", "sts", &region),
            region,
            timeout: self.timeout,
        };
        self.bounded(&ctx, async {
            let out = sts
                .get_caller_identity()
                .send()
                .await
                .map_err(|e| classify(&e, &ctx))?;
            Ok((
                out.arn().unwrap_or_default().to_owned(),
                out.account().unwrap_or_default().to_owned(),
                out.user_id().unwrap_or_default().to_owned(),
            ))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_shown_without_userinfo_query_or_fragment() {
        let shown = shown_endpoint("https://user:p4ss@gw.example.com:8443/sm?key=k3y#frag");
        assert_eq!(shown, "https://gw.example.com:8443/sm");
        assert_eq!(
            shown_endpoint("http://127.0.0.1:5000"),
            "http://127.0.0.1:5000"
        );
        assert!(!shown_endpoint("https://user:p4ss@[::1").contains("p4ss"));
    }

    #[test]
    fn version_ids_and_stages_are_told_apart_by_shape() {
        assert!(is_version_id(
            "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"
                .replace("EXAMPLE", "abcdef0")
                .as_str()
        ));
        assert!(is_version_id("00000000-0000-0000-0000-000000000000"));
        for stage in [
            "AWSCURRENT",
            "AWSPREVIOUS",
            "AWSPENDING",
            "my-label",
            "deadbeef",
        ] {
            assert!(!is_version_id(stage), "{stage}");
        }
    }
}
