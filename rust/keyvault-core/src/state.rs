//! The state of a secret (version), computed in one place from its properties: what `hg vault`,
//! `hg vault list` and `hg vault check` report, and what decides whether a read hands the value
//! out. Key Vault returns expired and not-yet-valid secrets like any other (`exp` and `nbf` are
//! informational, see the REST reference of Get Secret), and the keyring has no notion of them:
//! this is the only check that refuses them.

use crate::store::SecretProperties;
use std::fmt;
use time::{Duration, OffsetDateTime};

/// Where a secret stands, from its own properties alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretState {
    /// Enabled and within its dates.
    Ok,
    /// Readable, but expires within the warning period (`keyvault.expiry-warning`).
    ExpiringSoon,
    /// Its expiry (`exp`) has passed.
    Expired,
    /// Its activation date (`nbf`) has not come yet.
    NotYetValid,
    /// Disabled in the store.
    Disabled,
}

impl SecretState {
    /// The state of `p` at `now`; `warning` is how long before its expiry a secret counts as
    /// expiring soon. A disabled secret is disabled whatever its dates; an expired one is
    /// expired even if it is not valid yet either.
    pub fn of(p: &SecretProperties, now: OffsetDateTime, warning: Duration) -> Self {
        if !p.enabled {
            return SecretState::Disabled;
        }
        if p.expires.is_some_and(|e| e <= now) {
            return SecretState::Expired;
        }
        if p.not_before.is_some_and(|n| n > now) {
            return SecretState::NotYetValid;
        }
        if p.expires.is_some_and(|e| e - now < warning) {
            return SecretState::ExpiringSoon;
        }
        SecretState::Ok
    }

    /// The state of `p` now, without an expiry warning: what a read checks.
    pub fn now(p: &SecretProperties) -> Self {
        Self::of(p, OffsetDateTime::now_utc(), Duration::ZERO)
    }

    /// Whether a read may hand the value out.
    pub fn is_readable(self) -> bool {
        matches!(self, SecretState::Ok | SecretState::ExpiringSoon)
    }

    /// How `hg vault` prints it (and `-T json` carries it).
    pub fn as_str(self) -> &'static str {
        match self {
            SecretState::Ok => "ok",
            SecretState::ExpiringSoon => "expiring soon",
            SecretState::Expired => "expired",
            SecretState::NotYetValid => "not yet valid",
            SecretState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for SecretState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(enabled: bool, expires: Option<i64>, not_before: Option<i64>) -> SecretProperties {
        let at = |h: i64| OffsetDateTime::UNIX_EPOCH + Duration::hours(h);
        SecretProperties {
            enabled,
            expires: expires.map(at),
            not_before: not_before.map(at),
            ..Default::default()
        }
    }

    const NOW_H: i64 = 1000;

    fn state(p: &SecretProperties, warning_days: i64) -> SecretState {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::hours(NOW_H);
        SecretState::of(p, now, Duration::days(warning_days))
    }

    #[test]
    fn each_state_from_its_properties() {
        assert_eq!(state(&props(true, None, None), 14), SecretState::Ok);
        assert_eq!(
            state(&props(true, Some(NOW_H + 24), None), 14),
            SecretState::ExpiringSoon
        );
        assert_eq!(
            state(&props(true, Some(NOW_H + 24), None), 0),
            SecretState::Ok
        );
        assert_eq!(
            state(&props(true, Some(NOW_H + 24 * 30), None), 14),
            SecretState::Ok
        );
        assert_eq!(
            state(&props(true, Some(NOW_H), None), 14),
            SecretState::Expired
        );
        assert_eq!(
            state(&props(true, None, Some(NOW_H + 1)), 14),
            SecretState::NotYetValid
        );
        // Valid from exactly now on.
        assert_eq!(state(&props(true, None, Some(NOW_H)), 0), SecretState::Ok);
        assert_eq!(state(&props(false, None, None), 14), SecretState::Disabled);
    }

    #[test]
    fn disabled_wins_over_dates_and_expired_over_not_yet_valid() {
        assert_eq!(
            state(&props(false, Some(NOW_H - 1), Some(NOW_H + 1)), 14),
            SecretState::Disabled
        );
        assert_eq!(
            state(&props(true, Some(NOW_H - 1), Some(NOW_H + 1)), 14),
            SecretState::Expired
        );
        // Not valid yet and expiring soon after: not yet valid is what stops a read.
        assert_eq!(
            state(&props(true, Some(NOW_H + 2), Some(NOW_H + 1)), 14),
            SecretState::NotYetValid
        );
    }

    #[test]
    fn only_ok_and_expiring_soon_are_readable() {
        assert!(SecretState::Ok.is_readable());
        assert!(SecretState::ExpiringSoon.is_readable());
        assert!(!SecretState::Expired.is_readable());
        assert!(!SecretState::NotYetValid.is_readable());
        assert!(!SecretState::Disabled.is_readable());
        assert_eq!(SecretState::NotYetValid.to_string(), "not yet valid");
    }
}
