//! One credential link as data: what it needs, the one-sentence reason it applies or not
//! (decided from the [`CredentialEnv`] snapshot alone, nothing probed), how it builds its
//! `TokenCredential`, what goes into the token-cache key, and its hint. Adding a link is adding
//! one module under `links/` and one entry in [`super::links::LINKS`].

use super::env::CredentialEnv;
pub(crate) use crate::cache_seal::Material;
use crate::config::CredentialChoice;
use azure_core::{
    credentials::TokenCredential,
    http::{ClientOptions, Pipeline},
};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What the chain will do with one link, decided from the snapshot alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkPlan {
    /// The link applies; what answers and why it was chosen
    /// (`managed identity (Azure VM: SMBIOS asset tag)`).
    Use(String),
    /// Not tried; the one reason.
    Skip(String),
    /// Inputs exist but this build cannot use them; why (counts as a failure).
    Unsupported(String),
    /// Inputs exist but are unsafe to use (plain http to another host...); why (a failure).
    Refused(String),
}

/// One link of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedLink {
    /// The `keyvault.credential` value that pins this link's group.
    pub link: CredentialChoice,
    /// The link (`environment`, `github-actions`, `azure-vm`, ...).
    pub id: &'static str,
    /// What will happen.
    pub plan: LinkPlan,
}

/// A built link.
pub(crate) enum Ready {
    Credential(Arc<dyn TokenCredential>),
    /// Planned but could not be built (e.g. the token file is unreadable); why.
    Broken(String),
}

/// One way to get a token.
pub(crate) trait Link: Send + Sync {
    /// Stable name: messages, `hg vault -T json`, the token cache.
    fn id(&self) -> &'static str;
    /// The `keyvault.credential` value that selects it (with the rest of its group).
    fn group(&self) -> CredentialChoice;
    /// Whether it applies, from the snapshot alone. `pinned`: the user chose this link's group.
    fn plan(&self, env: &CredentialEnv, pinned: bool) -> LinkPlan;
    /// Feeds what decides which token it would get (ids, digests of credential material, never
    /// the material) into the token-cache key. Called only when the plan is `Use`.
    fn cache_key(&self, env: &CredentialEnv, line: &mut dyn FnMut(&str, &str));
    /// The credential material its cached entries are sealed under ([`crate::cache_seal`]):
    /// what a neighbour of the same uid lacks. `Public` only where anyone on the host could
    /// ask for the same token anyway. Called only when the plan is `Use`.
    fn seal_material(&self, env: &CredentialEnv) -> Material;
    /// Builds the credential. Called only when the plan is `Use`.
    fn build(&self, env: &CredentialEnv, options: &ClientOptions) -> Ready;
    /// True when it asks an endpoint of this host in plain http (IMDS, App Service, Arc, Azure
    /// ML, Service Fabric): never through HTTP_PROXY / ALL_PROXY, as the SDK's own managed
    /// identity client does, so that its secret header and the token stay off the proxy.
    fn host_local(&self) -> bool {
        false
    }
    /// True when it talks to Entra's token endpoint (then `AZURE_AUTHORITY_HOST` matters).
    fn uses_entra(&self) -> bool {
        false
    }
    /// What to do when this link was the one chosen and it failed.
    fn hint(&self) -> &'static str;
}

/// The value of `name` as sealing material (empty when unset: then it seals nothing away).
pub(crate) fn env_material(env: &CredentialEnv, name: &str) -> Material {
    Material::Value(zeroize::Zeroizing::new(
        env.get(name).unwrap_or_default().to_owned(),
    ))
}

/// `A, B are not set`.
pub(crate) fn not_set(names: &[&str]) -> String {
    let verb = if names.len() == 1 { "is" } else { "are" };
    format!("{} {verb} not set", names.join(", "))
}

/// Hex SHA-256, for cache-key lines about secret material.
pub(crate) fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The tenant and client of an app registration, from `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`.
pub(crate) fn app_ids(env: &CredentialEnv) -> Result<(String, String), Vec<&'static str>> {
    let missing = env.missing(&["AZURE_TENANT_ID", "AZURE_CLIENT_ID"]);
    if !missing.is_empty() {
        return Err(missing);
    }
    let get = |n| env.get(n).unwrap_or_default().to_owned();
    Ok((get("AZURE_TENANT_ID"), get("AZURE_CLIENT_ID")))
}

/// True for `localhost`, `127.0.0.0/8` and `[::1]`: the only hosts a plain-http identity
/// endpoint may name (App Service, Arc, Cloud Shell serve theirs on loopback).
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses an endpoint named by `variable`: https anywhere, plain http only to loopback (a
/// secret header or a CI token must not cross a network in clear), no user info.
pub(crate) fn endpoint_url(variable: &str, value: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(value).map_err(|e| format!("{variable} is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{variable} must not contain user info"));
    }
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(format!(
            "{variable} {} uses plain http to a host other than this machine; only localhost and 127.0.0.1 may use http",
            crate::transport::display_url(&url)
        )),
        other => Err(format!("{variable} has the scheme '{other}'; use https")),
    }
}

/// An HTTP pipeline with the store's transport, timeouts and User-Agent.
pub(crate) fn pipeline(options: &ClientOptions) -> Pipeline {
    Pipeline::new(
        Some(env!("CARGO_PKG_NAME")),
        Some(env!("CARGO_PKG_VERSION")),
        options.clone(),
        Vec::new(),
        Vec::new(),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_accepted_for_loopback_identity_endpoints_only() {
        for ok in [
            "http://localhost:8081/msi/token",
            "http://LOCALHOST:40342/metadata/identity/oauth2/token",
            "http://127.0.0.1:41741/MSI/token/",
            "http://127.0.0.2/x",
            "http://[::1]:50342/oauth2/token",
            "https://identity.example/token",
        ] {
            assert!(endpoint_url("IDENTITY_ENDPOINT", ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://10.0.0.5/msi/token", "plain http"),
            ("http://localhost.evil.example/x", "plain http"),
            ("http://169.254.169.254/metadata", "plain http"),
            ("ftp://localhost/x", "scheme 'ftp'"),
            ("https://u:p@localhost/x", "user info"),
            ("not a url", "not a URL"),
        ] {
            let e = endpoint_url("IDENTITY_ENDPOINT", bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.starts_with("IDENTITY_ENDPOINT"), "{e}");
            assert!(!e.contains("u:p"), "{e}");
        }
    }
}
