//! The one error type of the core: a kind to branch on, one sentence for the user and a hint
//! that says what to do (the shape of Mercurial's `error.Abort(msg, hint=)`).
//!
//! Messages and hints never contain a secret value or a token: they are built only from refs,
//! names, URLs, ids and causes that the core formats itself. Some of those parts come from
//! outside (an error code in a vault's answer, an identity endpoint's reason, a URL), so every
//! message and hint is made printable on construction: no escape sequence or control character
//! but the core's own line breaks can reach a terminal through an error.

use crate::printable::printable_lines;
use crate::state::SecretState;
use std::fmt;

/// What went wrong, coarse enough for the bindings to map onto a small exception hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A secret ref (or Key Vault secret identifier) is not valid.
    BadRef,
    /// The configuration is not valid (URL, credential choice, prefix, timeout, CA bundle...).
    BadConfig,
    /// The vault has no such secret (or no such version).
    NotFound,
    /// The identity is authenticated but lacks a role on the vault.
    Forbidden,
    /// The secret exists but is disabled.
    Disabled,
    /// The secret has expired or is not valid yet.
    Expired,
    /// No credential of the chain could get a token.
    Unauthenticated,
    /// The vault or the token endpoint cannot be reached (TLS, refused, unknown host).
    Unreachable,
    /// The operation did not finish within the configured timeout.
    Timeout,
    /// The service asked to slow down for longer than the deadline allows.
    Throttled,
    /// The service failed (5xx) or answered something the core does not understand.
    Service,
    /// A value, its tags or its content type exceed what the vault stores.
    TooLarge,
}

impl ErrorKind {
    /// A stable, kebab-case name (for `-T json` output and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRef => "bad-ref",
            ErrorKind::BadConfig => "bad-config",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Disabled => "disabled",
            ErrorKind::Expired => "expired",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Service => "service",
            ErrorKind::TooLarge => "too-large",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with one sentence for the user and, almost always, a hint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    state: Option<SecretState>,
}

/// `Result` with the core's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error without a hint (prefer [`Error::with_hint`]).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: printable_lines(&message.into()),
            hint: None,
            state: None,
        }
    }

    /// Adds (or replaces) the hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(printable_lines(&hint.into()));
        self
    }

    /// Records the state of the secret that a read refused (disabled, expired, not yet valid),
    /// so that `hg vault` can report it without telling the kinds apart by their message.
    #[must_use]
    pub fn with_state(mut self, state: SecretState) -> Self {
        self.state = Some(state);
        self
    }

    /// The state of the refused secret, when the error is such a refusal.
    pub fn state(&self) -> Option<SecretState> {
        self.state
    }

    /// What went wrong, to branch on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// One sentence for the user.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    pub(crate) fn bad_ref(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRef, message)
    }

    pub(crate) fn bad_config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadConfig, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_message_and_accessors_return_parts() {
        let err = Error::new(ErrorKind::NotFound, "no secret").with_hint("run `hg vault set REF`");
        assert_eq!(err.to_string(), "no secret");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.message(), "no secret");
        assert_eq!(err.hint(), Some("run `hg vault set REF`"));
    }

    #[test]
    fn messages_and_hints_from_outside_cannot_carry_escape_sequences() {
        let err = Error::new(
            ErrorKind::Service,
            "vault said \x1b]0;owned\x07 (code\r)\nnext line",
        )
        .with_hint("see \u{202E}txt.exe");
        assert_eq!(err.message(), "vault said ?]0;owned? (code?)\nnext line");
        assert_eq!(err.hint(), Some("see ?txt.exe"));
    }

    #[test]
    fn kinds_have_stable_names() {
        assert_eq!(ErrorKind::BadRef.as_str(), "bad-ref");
        assert_eq!(ErrorKind::Unauthenticated.to_string(), "unauthenticated");
    }
}
