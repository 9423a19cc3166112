//! The two things every secret has: a validated name and a plaintext value
//! that refuses to be printed.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::error::InputError;

/// Longest secret name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Shortest accepted value. Anything shorter cannot be scrubbed from logs
/// reliably: it would match ordinary text far too often.
pub const MIN_VALUE_LEN: usize = 8;
/// Longest accepted value (64 KiB).
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// A secret's name: `^[A-Z][A-Z0-9_]{0,127}$`.
///
/// Names are not secret. They appear in listings, audit entries, errors and
/// `[REDACTED:NAME]` markers.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretName(String);

impl SecretName {
    /// Validates `name`.
    ///
    /// ```
    /// use narakim::vault::SecretName;
    /// assert!(SecretName::new("DISCORD_BOT_TOKEN").is_ok());
    /// assert!(SecretName::new("discord_bot_token").is_err());
    /// assert!(SecretName::new("1TOKEN").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self, InputError> {
        let mut bytes = name.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_uppercase());
        let rest_ok = bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !first_ok || !rest_ok || name.len() > MAX_NAME_LEN {
            // Echo only what looks like a mistyped name; a pasted token or
            // `NAME=value` may hold a value and is never repeated.
            let looks_like_value = name.len() > 32
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            return Err(InputError::SecretName {
                name: if looks_like_value {
                    "(not shown: it may contain a value)".to_owned()
                } else {
                    printable(name)
                },
            });
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A secret's plaintext. The bytes are wiped when the value is dropped, and
/// `Debug` and `Display` print `[REDACTED]`.
///
/// The crate never hands the plaintext out through its public API: only code
/// inside the crate (the runtime that gives it to the extension that declared
/// it, and the scrubber that hides it again) can read it. Callers outside
/// can compare it against a candidate in constant time with
/// [`SecretValue::matches`].
///
/// ```
/// use narakim::vault::SecretValue;
/// let v = SecretValue::new("hunter2-hunter2".to_string()).unwrap();
/// assert_eq!(format!("{v} {v:?}"), "[REDACTED] [REDACTED]");
/// assert!(v.matches(b"hunter2-hunter2"));
/// ```
#[derive(Clone)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// Validates a value: 8 bytes to 64 KiB of UTF-8 with no NUL.
    pub fn new(value: String) -> Result<Self, InputError> {
        let value = Zeroizing::new(value);
        let len = value.len();
        if len < MIN_VALUE_LEN {
            return Err(InputError::ValueTooShort { len });
        }
        if len > MAX_VALUE_LEN {
            return Err(InputError::ValueTooLong { len });
        }
        if value.as_bytes().contains(&0) {
            return Err(InputError::ValueHasNul);
        }
        Ok(Self(value))
    }

    /// Validates raw bytes (for example what was read from stdin).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, InputError> {
        match String::from_utf8(bytes) {
            Ok(s) => Self::new(s),
            Err(e) => {
                // The rejected bytes are still secret: wipe them.
                drop(Zeroizing::new(e.into_bytes()));
                Err(InputError::ValueNotUtf8)
            }
        }
    }

    /// Length in bytes. Lengths are not secret enough to hide from callers
    /// that already hold the value.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with a candidate plaintext.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(candidate).into()
    }

    /// The plaintext, moved into the zeroizing buffer that holds it (no
    /// copy). Crate-internal on purpose: see the type docs.
    pub(crate) fn into_zeroizing(self) -> Zeroizing<String> {
        self.0
    }

    /// The plaintext. Crate-internal on purpose: see the type docs.
    #[allow(dead_code)] // read by the runtime and the scrubber
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Quote user input for an error message, shortened and with control
/// characters escaped, so a mistyped name cannot mangle the terminal.
pub(crate) fn printable(input: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = input
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if input.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["A", "DISCORD_BOT_TOKEN", "X9_", &"A".repeat(128)] {
            assert!(SecretName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "_A", "9A", "A-B", "A B", "Ä", &"A".repeat(129)] {
            assert!(SecretName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values() {
        assert!(matches!(
            SecretValue::new("short".into()),
            Err(InputError::ValueTooShort { len: 5 })
        ));
        assert!(SecretValue::new("12345678".into()).is_ok());
        assert!(SecretValue::new("a".repeat(MAX_VALUE_LEN)).is_ok());
        assert!(matches!(
            SecretValue::new("a".repeat(MAX_VALUE_LEN + 1)),
            Err(InputError::ValueTooLong { .. })
        ));
        assert!(matches!(
            SecretValue::new("abcd\0efgh".into()),
            Err(InputError::ValueHasNul)
        ));
        assert!(matches!(
            SecretValue::from_bytes(vec![0xff; 10]),
            Err(InputError::ValueNotUtf8)
        ));
    }

    #[test]
    fn never_prints() {
        let v = SecretValue::new("sk-or-v1-abcdef".into()).unwrap();
        let shown = format!("{v} {v:?} {:?}", Some(&v));
        assert!(!shown.contains("abcdef"), "{shown}");
        assert!(v.matches(b"sk-or-v1-abcdef"));
        assert!(!v.matches(b"sk-or-v1-abcdeg"));
        assert!(!v.matches(b"sk-or-v1-abcde"));
    }
}
