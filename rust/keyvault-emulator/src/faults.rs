//! Fault injection: the fault spec (CLI `--fault` and control API), and matching requests to it.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Which part of the emulator a request went to (also the `target` of the request log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Vault,
    Token,
    Identity,
    Discovery,
    /// The CI OIDC issuers (GitHub, Azure Pipelines, GitLab): their token endpoints and JWKS.
    Oidc,
    All,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Vault => "vault",
            Target::Token => "token",
            Target::Identity => "identity",
            Target::Discovery => "discovery",
            Target::Oidc => "oidc",
            Target::All => "all",
        }
    }

    /// Does a fault aimed at `self` apply to a request that went to `actual`?
    /// `token` covers all of Entra ID: the token endpoint and its discovery documents.
    fn covers(self, actual: Target) -> bool {
        self == Target::All
            || self == actual
            || (self == Target::Token && actual == Target::Discovery)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Status,
    Latency,
    Hang,
    Refuse,
    TokenLifetime,
    /// At most `limit` matching requests per `window_ms`; the rest get 429 with the
    /// `Retry-After` (seconds, rounded up) until the window has room, as Key Vault throttles.
    RateLimit,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Status => "status",
            Kind::Latency => "latency",
            Kind::Hang => "hang",
            Kind::Refuse => "refuse",
            Kind::TokenLifetime => "token-lifetime",
            Kind::RateLimit => "rate-limit",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    #[serde(default = "all")]
    pub target: Target,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// For `token-lifetime`: the `expires_in` (seconds) of issued tokens.
    #[serde(default, alias = "lifetime", skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// How many matching requests it applies to; absent = forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Only for requests of this client_id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Only active for this long after it was set; absent = until cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// For `rate-limit`: requests allowed per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// For `rate-limit`: the window (default 1000 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
}

fn all() -> Target {
    Target::All
}

impl FaultSpec {
    pub fn validate(&self) -> Result<(), String> {
        match self.kind {
            Kind::Status => match self.status {
                Some(s) if (400..=599).contains(&s) => Ok(()),
                _ => Err("a status fault needs \"status\" between 400 and 599".into()),
            },
            Kind::Latency if self.latency_ms.is_none() => {
                Err("a latency fault needs \"latency_ms\"".into())
            }
            Kind::TokenLifetime if self.expires_in.is_none() => {
                Err("a token-lifetime fault needs \"expires_in\" (seconds)".into())
            }
            Kind::RateLimit if self.limit.is_none() => {
                Err("a rate-limit fault needs \"limit\" (requests per window_ms)".into())
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Serialize)]
struct Active {
    #[serde(flatten)]
    spec: FaultSpec,
    /// Matching requests left; `None` = unlimited.
    remaining: Option<u64>,
    hits: u64,
    #[serde(skip)]
    until: Option<Instant>,
    /// `rate-limit`: when the requests it let through in the current window arrived.
    #[serde(skip)]
    seen: VecDeque<Instant>,
}

impl Active {
    fn live(&self, now: Instant) -> bool {
        self.remaining != Some(0) && self.until.is_none_or(|u| now < u)
    }
}

#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<Active>,
}

/// What a request looks like to the fault matcher.
pub struct Probe<'a> {
    pub target: Target,
    pub path: &'a str,
    pub principal: Option<&'a str>,
}

impl Faults {
    pub fn replace(&mut self, specs: Vec<FaultSpec>) {
        let now = Instant::now();
        self.active = specs
            .into_iter()
            .map(|spec| Active {
                remaining: spec.count,
                hits: 0,
                until: spec.duration_ms.map(|ms| now + Duration::from_millis(ms)),
                seen: VecDeque::new(),
                spec,
            })
            .collect();
    }

    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(&self.active).expect("faults serialize")
    }

    fn take_first(&mut self, pred: impl Fn(&FaultSpec) -> bool) -> Option<FaultSpec> {
        let now = Instant::now();
        let found = self
            .active
            .iter_mut()
            .find(|a| a.live(now) && pred(&a.spec))?;
        found.hits += 1;
        if let Some(r) = found.remaining.as_mut() {
            *r -= 1;
        }
        Some(found.spec.clone())
    }

    /// A `refuse` fault for the whole port: drop the connection before TLS.
    pub fn take_connection_refusal(&mut self) -> bool {
        self.take_first(|s| {
            s.kind == Kind::Refuse
                && s.target == Target::All
                && s.principal.is_none()
                && s.path_prefix.is_none()
        })
        .is_some()
    }

    /// The request-level fault (status, latency, hang, refuse, rate-limit) for this request.
    pub fn take_for_request(&mut self, probe: &Probe<'_>) -> Option<FaultSpec> {
        let now = Instant::now();
        for a in self.active.iter_mut() {
            if !a.live(now) || a.spec.kind == Kind::TokenLifetime || !matches(&a.spec, probe) {
                continue;
            }
            if a.spec.kind == Kind::RateLimit {
                let window = Duration::from_millis(a.spec.window_ms.unwrap_or(1000));
                while a
                    .seen
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    a.seen.pop_front();
                }
                if (a.seen.len() as u64) < a.spec.limit.unwrap_or(u64::MAX) {
                    a.seen.push_back(now);
                    continue;
                }
                let oldest = a.seen.front().copied().unwrap_or(now);
                let wait = window.saturating_sub(now.duration_since(oldest));
                a.hits += 1;
                let mut spec = a.spec.clone();
                spec.status = Some(429);
                spec.retry_after = Some(wait.as_millis().div_ceil(1000).max(1) as u64);
                return Some(spec);
            }
            a.hits += 1;
            if let Some(r) = a.remaining.as_mut() {
                *r -= 1;
            }
            return Some(a.spec.clone());
        }
        None
    }

    /// The token lifetime a `token-lifetime` fault imposes on this token request, if any.
    pub fn take_token_lifetime(&mut self, probe: &Probe<'_>) -> Option<u64> {
        self.take_first(|s| s.kind == Kind::TokenLifetime && matches(s, probe))
            .and_then(|s| s.expires_in)
    }
}

fn matches(spec: &FaultSpec, probe: &Probe<'_>) -> bool {
    spec.target.covers(probe.target)
        && spec
            .path_prefix
            .as_deref()
            .is_none_or(|p| probe.path.starts_with(p))
        && spec.principal.as_deref().is_none_or(|p| {
            probe
                .principal
                .is_some_and(|actual| actual.eq_ignore_ascii_case(p))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn count_limits_and_principal_filters() {
        let mut f = Faults::default();
        f.replace(vec![spec(
            r#"{"target":"vault","kind":"status","status":403,"principal":"abc","count":1}"#,
        )]);
        let other = Probe {
            target: Target::Vault,
            path: "/secrets/x",
            principal: Some("zzz"),
        };
        let me = Probe {
            target: Target::Vault,
            path: "/secrets/x",
            principal: Some("ABC"),
        };
        assert!(f.take_for_request(&other).is_none());
        assert!(f.take_for_request(&me).is_some());
        assert!(f.take_for_request(&me).is_none());
    }

    #[test]
    fn rate_limit_lets_limit_through_per_window_then_asks_to_wait() {
        let mut f = Faults::default();
        f.replace(vec![spec(
            r#"{"target":"vault","kind":"rate-limit","limit":2,"window_ms":60000}"#,
        )]);
        let p = Probe {
            target: Target::Vault,
            path: "/secrets/x",
            principal: None,
        };
        assert!(f.take_for_request(&p).is_none());
        assert!(f.take_for_request(&p).is_none());
        let throttled = f.take_for_request(&p).expect("third request throttled");
        assert_eq!(throttled.status, Some(429));
        assert!((59..=60).contains(&throttled.retry_after.unwrap()));
        let token = Probe {
            target: Target::Token,
            ..p
        };
        assert!(f.take_for_request(&token).is_none());
        assert!(spec(r#"{"kind":"rate-limit"}"#).validate().is_err());
    }

    #[test]
    fn token_target_covers_discovery_and_rejects_unknown_fields() {
        let mut f = Faults::default();
        f.replace(vec![spec(
            r#"{"target":"token","kind":"status","status":503}"#,
        )]);
        let p = Probe {
            target: Target::Discovery,
            path: "/t/v2.0/.well-known/x",
            principal: None,
        };
        assert!(f.take_for_request(&p).is_some());
        assert!(serde_json::from_str::<FaultSpec>(r#"{"kind":"hang","bogus":1}"#).is_err());
    }
}
