//! API tokens: a recognisable, checksummed format, and verification by a
//! keyed digest.
//!
//! A token is `nrk_`, then 43 base62 characters drawn uniformly at random
//! (43 × log2 62 ≈ 256.03 bits), then 6 base62 characters of the CRC-32 of
//! everything before them: 53 characters. The model is GitHub's `ghp_`
//! format, for the same two reasons:
//! - **Secret scanners can find a leaked one**: the prefix and the fixed
//!   length are a precise pattern, and the checksum lets a scanner drop
//!   look-alikes without asking us.
//! - **Typos are rejected offline**: a mistyped, truncated or pasted-twice
//!   token fails [`ApiToken::parse`] with an error that says which, before
//!   anything is looked up.
//!
//! The checksum is not a secret and adds no strength; the 256 random bits
//! are the token's whole strength.
//!
//! The server stores only a [`TokenDigest`]: HMAC-SHA256 of the token under
//! a server key ([`TokenHasher`]). A stolen database therefore holds nothing
//! a client can present, and nothing to test guesses against without the
//! key. Digests are compared in constant time.
//!
//! ```
//! use narakim::vault::token::{ApiToken, TokenHasher};
//!
//! let hasher = TokenHasher::new(&[7u8; 32]);
//! let token = ApiToken::generate().unwrap();
//! let stored = hasher.digest(&token);
//! // What a client sends back is parsed (format, checksum), then digested.
//! let presented = ApiToken::parse(token.expose()).unwrap();
//! assert!(hasher.digest(&presented).matches(&stored));
//! assert_eq!(format!("{token} {token:?}"), "[REDACTED] [REDACTED]");
//! ```

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// What every token starts with.
pub const PREFIX: &str = "nrk_";
/// Random base62 characters after the prefix.
const RANDOM_CHARS: usize = 43;
/// Base62 characters of the CRC-32 checksum at the end.
const CHECKSUM_CHARS: usize = 6;
/// Length of every token.
pub const TOKEN_LEN: usize = PREFIX.len() + RANDOM_CHARS + CHECKSUM_CHARS;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a text is not a well-formed token. No variant quotes the text: it
/// may be a real token with one character wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("this is not a narakim API token: tokens start with `{PREFIX}`")]
    NotAToken,
    #[error(
        "the token is {len} characters long, but narakim API tokens are {TOKEN_LEN}: it was cut short or pasted with something extra; copy it again"
    )]
    WrongLength { len: usize },
    #[error(
        "the token has a character that is not a letter or digit at position {position}; copy it again"
    )]
    BadCharacter { position: usize },
    #[error("the token's checksum does not match: it was mistyped; copy it again")]
    ChecksumMismatch,
    #[error("the system's random number generator failed: {0}")]
    Random(String),
}

/// An API token's plaintext, zeroized on drop; prints as `[REDACTED]`.
#[derive(Clone)]
pub struct ApiToken(Zeroizing<String>);

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl ApiToken {
    /// A new token: 256 random bits, checksummed.
    pub fn generate() -> Result<Self, TokenFormatError> {
        let mut token = Zeroizing::new(String::with_capacity(TOKEN_LEN));
        token.push_str(PREFIX);
        // Rejection sampling: bytes below 248 (= 4 × 62) map uniformly.
        let mut pool = Zeroizing::new([0u8; 64]);
        while token.len() < PREFIX.len() + RANDOM_CHARS {
            getrandom::fill(pool.as_mut()).map_err(|e| TokenFormatError::Random(e.to_string()))?;
            for &b in pool.iter() {
                if b < 248 && token.len() < PREFIX.len() + RANDOM_CHARS {
                    token.push(BASE62[(b % 62) as usize] as char);
                }
            }
        }
        let checksum = checksum_chars(crc32(token.as_bytes()));
        token.push_str(std::str::from_utf8(&checksum).expect("base62 is ASCII"));
        Ok(ApiToken(token))
    }

    /// Checks `text` is a well-formed token (prefix, length, alphabet,
    /// checksum), saying what is wrong if not. Says nothing about whether
    /// any server issued it.
    pub fn parse(text: &str) -> Result<Self, TokenFormatError> {
        if !text.starts_with(PREFIX) {
            return Err(TokenFormatError::NotAToken);
        }
        // Counted in characters, as the person who pasted it sees them.
        let len = text.chars().count();
        if len != TOKEN_LEN {
            return Err(TokenFormatError::WrongLength { len });
        }
        if let Some(at) = text
            .chars()
            .skip(PREFIX.len())
            .position(|c| !c.is_ascii_alphanumeric())
        {
            return Err(TokenFormatError::BadCharacter {
                position: PREFIX.len() + at + 1,
            });
        }
        let (body, checksum) = text.split_at(TOKEN_LEN - CHECKSUM_CHARS);
        // Not secret: the checksum is a function of the token's text, and a
        // scanner can compute it too.
        if checksum.as_bytes() != checksum_chars(crc32(body.as_bytes())) {
            return Err(TokenFormatError::ChecksumMismatch);
        }
        Ok(ApiToken(Zeroizing::new(text.to_owned())))
    }

    /// The plaintext, to print once when the token is created.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// HMAC-SHA256 of a token under the server's token key: all the server
/// stores of a token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

impl TokenDigest {
    /// Constant-time equality.
    pub fn matches(&self, other: &TokenDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TokenDigest(bytes)
    }
}

/// Digests tokens under one key.
pub struct TokenHasher {
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHasher([REDACTED])")
    }
}

impl TokenHasher {
    pub fn new(key: &[u8; 32]) -> Self {
        TokenHasher {
            key: Zeroizing::new(*key),
        }
    }

    pub fn digest(&self, token: &ApiToken) -> TokenDigest {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.key.as_ref())
            .expect("HMAC takes any key");
        mac.update(token.expose().as_bytes());
        TokenDigest(mac.finalize().into_bytes().into())
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// `value` in base62, most significant first, zero-padded to 6 characters.
fn checksum_chars(mut value: u32) -> [u8; CHECKSUM_CHARS] {
    let mut out = [BASE62[0]; CHECKSUM_CHARS];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = ApiToken::generate().unwrap();
        let b = ApiToken::generate().unwrap();
        assert_eq!(a.expose().len(), TOKEN_LEN);
        assert!(a.expose().starts_with(PREFIX));
        assert_ne!(a.expose(), b.expose());
        assert!(ApiToken::parse(a.expose()).is_ok());
    }

    #[test]
    fn random_characters_cover_the_whole_alphabet() {
        let mut seen = [false; 256];
        for _ in 0..200 {
            let t = ApiToken::generate().unwrap();
            for b in t.expose()[PREFIX.len()..TOKEN_LEN - CHECKSUM_CHARS].bytes() {
                seen[b as usize] = true;
            }
        }
        assert!(BASE62.iter().all(|&b| seen[b as usize]));
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let token = ApiToken::generate().unwrap();
        let text = token.expose().as_bytes().to_vec();
        for at in PREFIX.len()..TOKEN_LEN {
            for &c in BASE62 {
                if c == text[at] {
                    continue;
                }
                let mut typo = text.clone();
                typo[at] = c;
                let typo = String::from_utf8(typo).unwrap();
                assert_eq!(
                    ApiToken::parse(&typo).unwrap_err(),
                    TokenFormatError::ChecksumMismatch,
                    "a typo at {at} went through"
                );
            }
        }
        // Two adjacent characters swapped.
        for at in PREFIX.len()..TOKEN_LEN - 1 {
            let mut swapped = text.clone();
            swapped.swap(at, at + 1);
            if swapped != text {
                let swapped = String::from_utf8(swapped).unwrap();
                assert!(
                    ApiToken::parse(&swapped).is_err(),
                    "a swap at {at} went through"
                );
            }
        }
    }

    #[test]
    fn malformed_texts_say_what_is_wrong_without_quoting_them() {
        let token = ApiToken::generate().unwrap();
        let text = token.expose();
        let cases = [
            (String::new(), TokenFormatError::NotAToken),
            (format!("ghp_{}", &text[4..]), TokenFormatError::NotAToken),
            (format!(" {text}"), TokenFormatError::NotAToken),
            (
                text[..TOKEN_LEN - 1].to_owned(),
                TokenFormatError::WrongLength { len: TOKEN_LEN - 1 },
            ),
            (
                format!("{text}{text}"),
                TokenFormatError::WrongLength { len: 2 * TOKEN_LEN },
            ),
            (
                format!("{text}\n"),
                TokenFormatError::WrongLength { len: TOKEN_LEN + 1 },
            ),
            (
                format!("{}-{}", &text[..10], &text[11..]),
                TokenFormatError::BadCharacter { position: 11 },
            ),
            (
                format!("{}_{}", &text[..10], &text[11..]),
                TokenFormatError::BadCharacter { position: 11 },
            ),
        ];
        for (input, expected) in cases {
            let error = ApiToken::parse(&input).unwrap_err();
            assert_eq!(error, expected, "for {input:?}");
            let message = error.to_string();
            assert!(!message.contains(&text[4..14]), "{message}");
        }
        // A character that is not ASCII, where a letter should be.
        let wide = format!("{}é{}", &text[..10], &text[11..]);
        assert_eq!(wide.chars().count(), TOKEN_LEN);
        assert!(matches!(
            ApiToken::parse(&wide),
            Err(TokenFormatError::BadCharacter { position: 11 })
        ));
    }

    #[test]
    fn digests_depend_on_the_key_and_the_token() {
        let token = ApiToken::generate().unwrap();
        let other = ApiToken::generate().unwrap();
        let (a, b) = (TokenHasher::new(&[1; 32]), TokenHasher::new(&[2; 32]));
        assert!(a.digest(&token).matches(&a.digest(&token)));
        assert!(!a.digest(&token).matches(&b.digest(&token)));
        assert!(!a.digest(&token).matches(&a.digest(&other)));
        assert_eq!(format!("{:?}", a.digest(&token)), "TokenDigest(..)");
    }
}
