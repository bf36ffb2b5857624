//! The managed-identity endpoints a host serves itself (App Service / Container Apps, Azure
//! Arc, Cloud Shell, Azure Machine Learning): one `TokenCredential` that speaks each one's
//! protocol, as the Azure SDKs do (azure-identity for Python: `app_service.py`, `azure_arc.py`,
//! `cloud_shell.py`, `azure_ml.py`). Ours because the Rust SDK knows only App Service and reads
//! the process environment instead of the chain's snapshot.

use crate::transport;
use async_trait::async_trait;
use azure_core::{
    credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions},
    http::{Method, Pipeline, PipelineSendOptions, RawResponse, Request},
    time::OffsetDateTime,
};
use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    sync::Mutex,
};

/// Which endpoint protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `GET ?api-version=2019-08-01&resource=R[&client_id=]`, header `X-IDENTITY-HEADER`.
    AppService,
    /// `GET ?api-version=2020-06-01&resource=R`, `Metadata: true`; a 401 names a key file whose
    /// content goes back as `Authorization: Basic <content>`.
    Arc,
    /// `POST` form `resource=R[&client_id=]`, `Metadata: true`.
    CloudShell,
    /// `GET ?api-version=2017-09-01&resource=R[&clientid=]`, header `secret`.
    AzureMl,
}

/// Where the Arc agent keeps the key files its challenge names (Linux); the only directory a
/// key file is read from.
pub(crate) const ARC_KEY_DIR: &str = "/var/opt/azcmagent/tokens";

/// Largest key file the Arc agent writes (the SDKs refuse larger ones too).
const ARC_KEY_MAX: u64 = 4096;

/// A managed-identity endpoint on the host.
pub(crate) struct EndpointCredential {
    pub(crate) protocol: Protocol,
    pub(crate) endpoint: url::Url,
    /// `IDENTITY_HEADER` (App Service) or `MSI_SECRET` (Azure ML).
    pub(crate) secret: Option<Secret>,
    /// `AZURE_CLIENT_ID`, for a user-assigned identity (not on Arc).
    pub(crate) client_id: Option<String>,
    pub(crate) pipeline: Pipeline,
    /// [`ARC_KEY_DIR`]; unit tests use a temporary directory.
    pub(crate) arc_key_dir: PathBuf,
    pub(crate) cache: Mutex<BTreeMap<String, AccessToken>>,
}

impl fmt::Debug for EndpointCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointCredential")
            .field("protocol", &self.protocol)
            .field("endpoint", &transport::display_url(&self.endpoint))
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct MsiTokenResponse {
    access_token: String,
    #[serde(default)]
    expires_on: serde_json::Value,
    #[serde(default)]
    expires_in: serde_json::Value,
}

fn credential_error(message: String) -> azure_core::Error {
    azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, message)
}

fn as_i64(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

impl EndpointCredential {
    fn request(&self, resource: &str) -> Request {
        let mut url = self.endpoint.clone();
        let id = self.client_id.as_deref();
        match self.protocol {
            Protocol::AppService => {
                url.query_pairs_mut()
                    .append_pair("api-version", "2019-08-01")
                    .append_pair("resource", resource);
                if let Some(id) = id {
                    url.query_pairs_mut().append_pair("client_id", id);
                }
            }
            Protocol::Arc => {
                url.query_pairs_mut()
                    .append_pair("api-version", "2020-06-01")
                    .append_pair("resource", resource);
            }
            Protocol::AzureMl => {
                url.query_pairs_mut()
                    .append_pair("api-version", "2017-09-01")
                    .append_pair("resource", resource);
                if let Some(id) = id {
                    url.query_pairs_mut().append_pair("clientid", id);
                }
            }
            Protocol::CloudShell => {}
        }
        let method = if self.protocol == Protocol::CloudShell {
            Method::Post
        } else {
            Method::Get
        };
        let mut req = Request::new(url, method);
        match self.protocol {
            Protocol::AppService => {
                if let Some(s) = &self.secret {
                    req.insert_header("x-identity-header", s.secret().to_owned());
                }
                req.insert_header("metadata", "true");
            }
            Protocol::Arc => req.insert_header("metadata", "true"),
            Protocol::AzureMl => {
                if let Some(s) = &self.secret {
                    req.insert_header("secret", s.secret().to_owned());
                }
            }
            Protocol::CloudShell => {
                req.insert_header("metadata", "true");
                req.insert_header("content-type", "application/x-www-form-urlencoded");
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("resource", resource);
                if let Some(id) = id {
                    form.append_pair("client_id", id);
                }
                req.set_body(form.finish());
            }
        }
        req
    }

    async fn send(
        &self,
        ctx: &azure_core::http::Context<'_>,
        req: &mut Request,
    ) -> azure_core::Result<RawResponse> {
        self.pipeline
            .send(
                ctx,
                req,
                Some(PipelineSendOptions {
                    skip_checks: true,
                    ..Default::default()
                }),
            )
            .await
    }
}

/// The key file an Arc challenge names, if it is one the agent could have written: a `.key`
/// file directly in `dir` (after resolving symlinks and `..`), a regular file of at most 4096
/// bytes. Anything else is refused: the challenge comes over plain http, and a process that
/// can answer it must not make us read (and send) another file.
pub(crate) fn read_arc_key(challenge: Option<&str>, dir: &Path) -> Result<Secret, String> {
    let Some(header) = challenge else {
        return Err(
            "Azure Arc's identity endpoint answered 401 without a WWW-Authenticate header naming its key file"
                .to_owned(),
        );
    };
    let realm = header
        .trim()
        .strip_prefix("Basic realm=")
        .or_else(|| header.trim().strip_prefix("basic realm="))
        .map(|r| r.trim().trim_matches('"'))
        .filter(|r| !r.is_empty());
    let Some(realm) = realm else {
        return Err(
            "Azure Arc's identity endpoint answered 401 with a WWW-Authenticate header that is not Basic realm=<key file>"
                .to_owned(),
        );
    };
    let shown: String = realm.escape_debug().take(200).collect();
    let refuse = |why: &str| {
        Err(format!(
            "Azure Arc's challenge named the key file {shown}, which {why}; refused"
        ))
    };
    let path = Path::new(realm);
    if !path.is_absolute() {
        return refuse("is not an absolute path");
    }
    if path.extension().and_then(|e| e.to_str()) != Some("key") {
        return refuse("does not end in .key");
    }
    let (Ok(real), Ok(real_dir)) = (std::fs::canonicalize(path), std::fs::canonicalize(dir)) else {
        return refuse("does not exist");
    };
    if real.parent() != Some(real_dir.as_path())
        || real.extension().and_then(|e| e.to_str()) != Some("key")
    {
        return refuse("is not in the agent's token directory");
    }
    let meta = std::fs::metadata(&real)
        .map_err(|e| format!("cannot read Azure Arc's key file {shown}: {e}"))?;
    if !meta.is_file() {
        return refuse("is not a regular file");
    }
    if meta.len() > ARC_KEY_MAX {
        return refuse("is too large");
    }
    let content = std::fs::read_to_string(&real)
        .map_err(|e| format!("cannot read Azure Arc's key file {shown}: {e}"))?;
    let key = content.trim();
    if key.is_empty() || key.chars().any(|c| c.is_control()) {
        return refuse("is empty or not one line of text");
    }
    Ok(Secret::new(key.to_owned()))
}

#[async_trait]
impl TokenCredential for EndpointCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let [scope] = scopes else {
            return Err(credential_error(
                "managed identity needs exactly one scope".to_owned(),
            ));
        };
        if let Some(t) = self.cache.lock().ok().and_then(|c| c.get(*scope).cloned()) {
            if t.expires_on > OffsetDateTime::now_utc() + azure_core::time::Duration::seconds(300) {
                return Ok(t);
            }
        }
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let ctx = options
            .map(|o| o.method_options.context)
            .unwrap_or_default();
        let mut req = self.request(resource);
        let mut rsp = self.send(&ctx, &mut req).await?;
        if self.protocol == Protocol::Arc && u16::from(rsp.status()) == 401 {
            let challenge = rsp
                .headers()
                .get_optional_str(&azure_core::http::headers::WWW_AUTHENTICATE);
            let key = read_arc_key(challenge, &self.arc_key_dir).map_err(credential_error)?;
            let mut retry = self.request(resource);
            retry.insert_header("authorization", format!("Basic {}", key.secret()));
            rsp = self.send(&ctx, &mut retry).await?;
        }
        let status = u16::from(rsp.status());
        if !(200..300).contains(&status) {
            return Err(credential_error(format!(
                "the managed identity endpoint {} answered HTTP {status}",
                transport::display_url(&self.endpoint),
            )));
        }
        let body: MsiTokenResponse = serde_json::from_slice(rsp.body()).map_err(|_| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::DataConversion,
                "the managed identity endpoint answered something that is not a token response",
            )
        })?;
        let now = OffsetDateTime::now_utc();
        let expires = as_i64(&body.expires_on)
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .or_else(|| {
                as_i64(&body.expires_in).map(|s| now + azure_core::time::Duration::seconds(s))
            })
            .unwrap_or_else(|| now + azure_core::time::Duration::minutes(5));
        let token = AccessToken::new(body.access_token, expires);
        if let Ok(mut c) = self.cache.lock() {
            c.insert((*scope).to_owned(), token.clone());
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret_header() {
        let c = EndpointCredential {
            protocol: Protocol::AzureMl,
            endpoint: url::Url::parse("http://127.0.0.1:1/MSI/auth?x=query-distinctive").unwrap(),
            secret: Some(Secret::new("msi-secret-distinctive".to_owned())),
            client_id: None,
            pipeline: crate::credential::link::pipeline(&Default::default()),
            arc_key_dir: ARC_KEY_DIR.into(),
            cache: Mutex::default(),
        };
        let d = format!("{c:?}");
        assert!(!d.contains("distinctive"), "{d}");
        // The secret goes in the protocol's header, nowhere else in the request.
        let req = c.request("https://vault.azure.net");
        assert!(!req.url().as_str().contains("msi-secret-distinctive"));
    }

    fn realm(path: &Path) -> String {
        format!("Basic realm={}", path.display())
    }

    #[test]
    fn an_arc_key_file_is_read_only_from_the_agent_directory() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let good = tokens.join("abc.key");
        std::fs::write(&good, "key-distinctive\n").unwrap();
        assert_eq!(
            read_arc_key(Some(&realm(&good)), &tokens).unwrap().secret(),
            "key-distinctive"
        );

        let mut refused: Vec<(String, &str)> = Vec::new();
        // Outside the directory.
        let outside = dir.path().join("other.key");
        std::fs::write(&outside, "x").unwrap();
        refused.push((realm(&outside), "not in the agent's token directory"));
        // Escaping it with `..`.
        let dotdot = tokens.join("..").join("other.key");
        refused.push((realm(&dotdot), "not in the agent's token directory"));
        // A symlink in the directory pointing out of it.
        #[cfg(unix)]
        {
            let link = tokens.join("link.key");
            std::os::unix::fs::symlink(&outside, &link).unwrap();
            refused.push((realm(&link), "not in the agent's token directory"));
        }
        // Not .key.
        let txt = tokens.join("abc.txt");
        std::fs::write(&txt, "x").unwrap();
        refused.push((realm(&txt), "does not end in .key"));
        // Too large.
        let big = tokens.join("big.key");
        std::fs::write(&big, vec![b'a'; 4097]).unwrap();
        refused.push((realm(&big), "too large"));
        // A directory named .key.
        let sub = tokens.join("dir.key");
        std::fs::create_dir(&sub).unwrap();
        refused.push((realm(&sub), "not a regular file"));
        // Relative, missing.
        refused.push(("Basic realm=abc.key".to_owned(), "not an absolute path"));
        refused.push((realm(&tokens.join("gone.key")), "does not exist"));
        for (challenge, why) in refused {
            let e = read_arc_key(Some(&challenge), &tokens).unwrap_err();
            assert!(e.contains(why), "{challenge}: {e}");
            assert!(e.ends_with("; refused"), "{e}");
            assert!(e.len() < 400, "cut by sanitize_sdk_message: {e}");
        }
        for bad in [None, Some("Bearer realm=x"), Some("Basic realm=")] {
            let e = read_arc_key(bad, &tokens).unwrap_err();
            assert!(e.contains("401"), "{bad:?}: {e}");
        }
    }
}
