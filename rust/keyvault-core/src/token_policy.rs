//! The vault client's per-try policy that makes a warm process send one request: it runs after
//! the SDK's bearer policy (azure_core 1.1.0 puts `ClientOptions.per_try_policies` after the
//! client's own per-try policies). A new `SecretClient` knows no scope yet, so the SDK's
//! `KeyVaultAuthorizer` lets its first request go out without `Authorization` to provoke the
//! challenge; this policy adds the cached token instead.
//!
//! - Only GET requests to the store's own vault origin, still without `Authorization`. (A PUT's
//!   body was set aside by the authorizer for the challenge round; those take the SDK's path.)
//! - No fresh token: take the fetch lock, look again, and if the scope is unknown send the
//!   probe here, under the lock, so that many cold processes probe once, not once each. A host
//!   under a cloud's Key Vault suffix (`*.vault.azure.net`, the sovereign clouds') names its
//!   scope itself: no probe at all (see [`challenge::cloud_scope`]).
//! - The scope must pass the SDK's resource check when verification is on: a token is never
//!   sent to a host outside the challenge's domain.
//! - A 401 to a cached token drops it from the cache and goes back to the SDK's policy, whose
//!   challenge handler then asks the cache, which fetches a new token.
//! - Requests the SDK's policy authorized itself (PUT, DELETE) carry a token from the cache too:
//!   a 401 to one drops it and sends the request once more with a fresh token (the SDK's only
//!   retry after a 401 is spent on its challenge probe when the client is new).
//! - No cached token and no credential link applies: the chain's error at once, without even
//!   the challenge probe (off Azure with no identity, a command sends nothing).

use crate::challenge;
use crate::token_cache::TokenCache;
use azure_core::http::{
    headers::{AUTHORIZATION, WWW_AUTHENTICATE},
    policies::{Policy, PolicyResult},
    Context, Method, Request, StatusCode,
};
use std::sync::Arc;

#[derive(Debug)]
pub(crate) struct CachedTokenPolicy {
    tokens: Arc<TokenCache>,
    origin: url::Origin,
    host: String,
    verify_resource: bool,
}

impl CachedTokenPolicy {
    pub(crate) fn new(tokens: Arc<TokenCache>, vault: &url::Url, verify_resource: bool) -> Self {
        Self {
            tokens,
            origin: vault.origin(),
            host: vault.host_str().unwrap_or_default().to_owned(),
            verify_resource,
        }
    }

    fn scope_allowed(&self, scope: &str) -> bool {
        !self.verify_resource || challenge::scope_fits_host(scope, &self.host)
    }
}

impl CachedTokenPolicy {
    /// A request the SDK's policy authorized (PUT, DELETE, or a GET of a warm client) with a
    /// token from the cache. A 401 drops that token and the request is sent again, once, with a
    /// fresh one: the SDK's own retry after a 401 may already be spent (a new client's first
    /// PUT is the challenge probe, and its retry is this request).
    async fn send_authorized(
        &self,
        ctx: &Context<'_>,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let refused = (response.status() == StatusCode::Unauthorized
            && request.url().origin() == self.origin)
            .then(|| request.headers().get_optional_str(&AUTHORIZATION))
            .flatten()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_owned);
        let Some(refused) = refused.map(zeroize::Zeroizing::new) else {
            return Ok(response);
        };
        self.tokens.invalidate_token(&refused);
        let Some(scope) = self.tokens.known_scope().filter(|s| self.scope_allowed(s)) else {
            return Ok(response);
        };
        let fresh = self.tokens.token_for(&scope, None).await?;
        if fresh.token.token.secret() == refused.as_str() {
            return Ok(response);
        }
        drop(response);
        request.insert_header(
            AUTHORIZATION,
            format!("Bearer {}", fresh.token.token.secret()),
        );
        request.body_mut().reset().await?;
        let response = next[0].send(ctx, request, &next[1..]).await?;
        if response.status() == StatusCode::Unauthorized {
            self.tokens.invalidate(&fresh);
        }
        Ok(response)
    }
}

#[async_trait::async_trait]
impl Policy for CachedTokenPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let ours = request.method() == Method::Get
            && request.headers().get_optional_str(&AUTHORIZATION).is_none()
            && request.url().origin() == self.origin;
        if !ours {
            return self.send_authorized(ctx, request, next).await;
        }
        let cached = match self.tokens.fresh(None) {
            Some(t) => t,
            None => {
                self.tokens.fail_without_links().await?;
                let _guard = self.tokens.guard().await;
                match self.tokens.fresh(None) {
                    Some(t) => t,
                    None => {
                        // The cache's scope, else the one the host's cloud implies: only
                        // other hosts (private clouds, the emulator) need the probe.
                        let scope = match self
                            .tokens
                            .known_scope()
                            .or_else(|| challenge::cloud_scope(&self.host))
                        {
                            Some(s) => s,
                            None => {
                                let probe = next[0].send(ctx, request, &next[1..]).await?;
                                let scope = (probe.status() == StatusCode::Unauthorized)
                                    .then(|| probe.headers().get_optional_str(&WWW_AUTHENTICATE))
                                    .flatten()
                                    .and_then(challenge::scope_of);
                                match scope {
                                    Some(s) if self.scope_allowed(&s) => s,
                                    // Not a challenge we act on: the SDK's policy decides (and
                                    // reports a scope that fails verification).
                                    _ => return Ok(probe),
                                }
                            }
                        };
                        self.tokens.fetch(&scope, None).await?
                    }
                }
            }
        };
        if !self.scope_allowed(&cached.scope) {
            return next[0].send(ctx, request, &next[1..]).await;
        }
        request.insert_header(
            AUTHORIZATION,
            format!("Bearer {}", cached.token.token.secret()),
        );
        let response = next[0].send(ctx, request, &next[1..]).await?;
        if response.status() == StatusCode::Unauthorized {
            self.tokens.invalidate(&cached);
        }
        Ok(response)
    }
}
