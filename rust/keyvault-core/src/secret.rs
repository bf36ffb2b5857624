//! A secret value: bytes that redact themselves and are wiped when dropped.

use std::fmt;
use zeroize::Zeroizing;

/// What `Debug` and `Display` print instead of a value.
pub const REDACTED: &str = "****";

/// The bytes of a secret. `Debug`/`Display` print `****`; the buffer is zeroed on drop.
///
/// The only way to read the bytes is [`SecretValue::expose`], so that every place that does
/// is easy to find.
#[derive(Clone, Default)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Takes ownership of `bytes` (no copy is left behind).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The bytes; do not log, print or copy them into unzeroed buffers.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretValue {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl From<&[u8]> for SecretValue {
    fn from(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }
}

impl From<&str> for SecretValue {
    fn from(text: &str) -> Self {
        Self::new(text.as_bytes().to_vec())
    }
}

impl From<String> for SecretValue {
    fn from(text: String) -> Self {
        Self::new(text.into_bytes())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Constant-time over the common length, so that comparing values leaks no prefix timing.
impl PartialEq for SecretValue {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.expose(), other.expose());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for SecretValue {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_the_value() {
        let v = SecretValue::from("hunter2-distinctive");
        assert_eq!(format!("{v:?}"), "****");
        assert_eq!(format!("{v}"), "****");
        assert_eq!(format!("{:?}", Some(&v)), "Some(****)");
        assert_eq!(v.expose(), b"hunter2-distinctive");
    }

    #[test]
    fn conversions_keep_bytes() {
        assert_eq!(SecretValue::from(vec![0u8, 255]).expose(), &[0, 255]);
        assert_eq!(SecretValue::from(String::from("x")).expose(), b"x");
        assert_eq!(SecretValue::from(&b"ab"[..]).len(), 2);
        assert!(SecretValue::default().is_empty());
        assert_eq!(SecretValue::from("a"), SecretValue::from("a"));
        assert_ne!(SecretValue::from("a"), SecretValue::from("b"));
    }
}
