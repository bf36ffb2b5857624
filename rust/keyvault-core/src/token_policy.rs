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
            return next[0].send(ctx, request, &next[1..]).await;
        }
        let cached = match self.tokens.fresh(None) {
            Some(t) => t,
            None => {
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
