//! Webhook signature verifiers: one module per scheme a trigger may name.
//!
//! A verifier answers one question: did the holder of the key sign exactly
//! this request? It takes the key (the secret's stored text), the request
//! headers and the raw body, and returns what the signature proved
//! ([`Signed`]) or why it proved nothing ([`VerifyError`]). Checking the
//! signed timestamp against the clock is a separate step,
//! [`check_timestamp`], so the verifiers stay pure functions of their input.
//!
//! # Threats guarded against
//!
//! - **Forged**: only a signature computed with the key over the exact
//!   signed content passes; the body is taken as raw bytes and never
//!   re-encoded, so nothing a parser would normalise slips past.
//! - **Replayed**: every scheme that signs a timestamp returns it in
//!   [`Signed::timestamp`] for [`check_timestamp`], and
//!   [`Signed::replay_key`] is a hash of the signature that matched, the
//!   same for every copy of one signed request whatever unsigned headers an
//!   attacker changed, so a seen-set can refuse the second copy.
//! - **Truncated or empty signature**: every compare checks the lengths
//!   first, so a prefix of the right signature, the empty string and the
//!   right signature with bytes appended all fail. (A compare that stops
//!   at the shorter input accepts an empty signature.)
//! - **Downgrade by unknown version**: the key decides which signature
//!   version counts. Entries of other or unknown versions are skipped and
//!   never pass on their own; a header with none of the key's version is a
//!   [`VerifyError::Mismatch`]. GitHub's legacy SHA-1 header is never read.
//! - **Key confusion**: the key's format, never the request, picks the
//!   algorithm. A Standard Webhooks public key (`whpk_…`) only ever
//!   verifies Ed25519 signatures: it is refused as an HMAC secret, since a
//!   public key is no secret and anyone could compute that HMAC.
//!
//! Every compare is constant time ([`subtle::ConstantTimeEq`]) with an
//! explicit length check, over the raw bytes (the decoded signature
//! against the computed MAC), and runs before anything parses the body.
//!
//! Error messages name headers and say what was expected. They never hold
//! key material or signature values, so they can be logged and shown.

#![forbid(unsafe_code)]

pub mod discord;
pub mod fuzzing;
pub mod github;
pub mod hmac;
pub mod slack;
pub mod standard_webhooks;
pub mod stripe;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// What a verified request proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The signed timestamp (unix seconds), for schemes that sign one
    /// (standard-webhooks, stripe, slack, discord, hmac when configured).
    /// None for github.
    pub timestamp: Option<i64>,
    /// The delivery id from a header when the scheme has one
    /// (standard-webhooks `webhook-id` (signed), github `X-GitHub-Delivery`
    /// (not signed), hmac's optional delivery_header). None otherwise.
    pub delivery_id: Option<String>,
    /// SHA-256 of the signature bytes that matched: a replay of the same
    /// signed request has the same key, whatever unsigned headers were
    /// changed.
    pub replay_key: [u8; 32],
}

/// Why a request proved nothing. No message holds key material or a
/// signature value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("the request has no `{0}` header")]
    MissingHeader(String),
    /// A header is present but cannot be read as the scheme defines it.
    #[error("the `{header}` header is malformed: {reason}")]
    Malformed {
        /// The header's name.
        header: String,
        /// What is wrong and what was expected.
        reason: &'static str,
    },
    /// No signature of the key's version matches: also an empty, truncated
    /// or overlong signature, or only signatures of other versions.
    #[error("no signature in `{0}` matches the key")]
    Mismatch(String),
    /// The stored key is not in the format the scheme expects. The text
    /// says which format, never the key.
    #[error("the signing key does not decode: {0}")]
    BadKey(&'static str),
    /// The signed timestamp is too far from now (see [`check_timestamp`]).
    #[error(
        "the signed timestamp is {} s from now, outside the ±{tolerance} s tolerance",
        offset(*.timestamp, *.now)
    )]
    Stale {
        /// The signed timestamp, unix seconds.
        timestamp: i64,
        /// The clock it was checked against, unix seconds.
        now: i64,
        /// The tolerance either side of `now`, seconds.
        tolerance: u32,
    },
}

/// `timestamp - now` with its sign, without overflow at the i64 extremes.
fn offset(timestamp: i64, now: i64) -> String {
    format!("{:+}", i128::from(timestamp) - i128::from(now))
}

/// Every verifier a trigger may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// [Standard Webhooks](standard_webhooks) 1.0: `webhook-id`,
    /// `webhook-timestamp`, `webhook-signature`; HMAC-SHA256 or Ed25519.
    StandardWebhooks,
    /// [GitHub](github): `X-Hub-Signature-256`, HMAC-SHA256 of the body.
    Github,
    /// [Stripe](stripe): `Stripe-Signature`, HMAC-SHA256 of `{t}.{body}`.
    Stripe,
    /// [Slack](slack): `X-Slack-Signature`, HMAC-SHA256 of
    /// `v0:{ts}:{body}`.
    Slack,
    /// [Discord interactions](discord): Ed25519 over timestamp + body.
    Discord,
    /// A [generic HMAC](hmac) recipe configured in the graph.
    Hmac(self::hmac::HmacSpec),
}

impl Scheme {
    /// Verifies a request. `key` is the secret's stored text as bytes (what
    /// the user saved in the vault).
    pub fn verify(
        &self,
        key: &[u8],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Signed, VerifyError> {
        match self {
            Scheme::StandardWebhooks => standard_webhooks::verify(key, headers, body),
            Scheme::Github => github::verify(key, headers, body),
            Scheme::Stripe => stripe::verify(key, headers, body),
            Scheme::Slack => slack::verify(key, headers, body),
            Scheme::Discord => discord::verify(key, headers, body),
            Scheme::Hmac(spec) => self::hmac::verify(spec, key, headers, body),
        }
    }

    /// Checks the key's format without a request (used at deploy so a key
    /// that cannot decode is reported before any delivery).
    pub fn check_key(&self, key: &[u8]) -> Result<(), VerifyError> {
        match self {
            Scheme::StandardWebhooks => standard_webhooks::check_key(key),
            Scheme::Github => github::check_key(key),
            Scheme::Stripe => stripe::check_key(key),
            Scheme::Slack => slack::check_key(key),
            Scheme::Discord => discord::check_key(key),
            Scheme::Hmac(spec) => self::hmac::check_key(spec, key),
        }
    }

    /// The scheme's name as written in a graph: "standard-webhooks",
    /// "github", "stripe", "slack", "discord-interactions", "hmac".
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::Github => "github",
            Scheme::Stripe => "stripe",
            Scheme::Slack => "slack",
            Scheme::Discord => "discord-interactions",
            Scheme::Hmac(_) => "hmac",
        }
    }
}

/// Step 3: the timestamp within ±tolerance of now. Exactly `tolerance`
/// seconds either way passes; the arithmetic is in i128, so no pair of
/// i64 values overflows.
pub fn check_timestamp(timestamp: i64, now: i64, tolerance: u32) -> Result<(), VerifyError> {
    let distance = (i128::from(timestamp) - i128::from(now)).abs();
    if distance <= i128::from(tolerance) {
        Ok(())
    } else {
        Err(VerifyError::Stale {
            timestamp,
            now,
            tolerance,
        })
    }
}

/// Most signatures of the key's version one header may carry. Rotation
/// needs two or three; the cap bounds the work (an Ed25519 verify each) a
/// single request can ask for.
const MAX_SIGNATURES: usize = 16;

/// Constant-time equality of two byte strings. The length check comes
/// first and explicitly: lengths are public (every MAC of one algorithm
/// has the same), and a compare over the shorter of two inputs is exactly
/// the bug that lets an empty signature through.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// [`Signed::replay_key`] for the signature bytes that matched.
fn replay_key(signature: &[u8]) -> [u8; 32] {
    Sha256::digest(signature).into()
}

/// The header's text, which must be present once.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, VerifyError> {
    optional_header(headers, name)?.ok_or_else(|| VerifyError::MissingHeader(name.to_owned()))
}

/// The header's text if present. Repeated or not visible ASCII is
/// Malformed: two copies leave it ambiguous which one was signed, and a
/// proxy may merge or drop either.
fn optional_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(malformed(name, "it appears more than once"));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| malformed(name, "it holds characters other than visible ASCII"))
}

fn malformed(header: &str, reason: &'static str) -> VerifyError {
    VerifyError::Malformed {
        header: header.to_owned(),
        reason,
    }
}

/// A signed timestamp: integer unix seconds, ASCII digits with an optional
/// leading `-` and nothing else (no `+`, spaces or fraction), so the text
/// that was signed has one reading.
fn parse_timestamp(header: &str, text: &str) -> Result<i64, VerifyError> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(header, "expected integer unix seconds"));
    }
    text.parse()
        .map_err(|_| malformed(header, "the timestamp is out of range"))
}

/// HMAC of the concatenated parts, so the signed content is never copied
/// into one buffer just to be hashed.
fn mac<M: ::hmac::Mac + ::hmac::KeyInit>(
    key: &[u8],
    parts: &[&[u8]],
) -> Result<Vec<u8>, VerifyError> {
    // HMAC takes a key of any length; the error arm is unreachable but
    // handled rather than unwrapped.
    let mut mac = <M as ::hmac::KeyInit>::new_from_slice(key)
        .map_err(|_| VerifyError::BadKey("HMAC refused the key's length"))?;
    for part in parts {
        mac.update(part);
    }
    Ok(mac.finalize().into_bytes().to_vec())
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, VerifyError> {
    mac::<::hmac::Hmac<Sha256>>(key, parts)
}

/// An HMAC secret used as stored. Empty is refused (anyone can sign with
/// it), and so is a Standard Webhooks public key: it is not secret.
fn check_raw_secret(key: &[u8]) -> Result<(), VerifyError> {
    if key.is_empty() {
        return Err(VerifyError::BadKey(
            "the key is empty; store the webhook's signing secret",
        ));
    }
    if key.starts_with(b"whpk_") {
        return Err(VerifyError::BadKey(
            "this is a Standard Webhooks public key (whpk_…), which is no secret; \
             store the shared signing secret the sender signs with",
        ));
    }
    Ok(())
}

/// Hex, either case. None for odd length or a non-hex character.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match *pair {
            [high, low] => Some(nibble(high)? << 4 | nibble(low)?),
            _ => None,
        })
        .collect()
}

/// Lowercase hex, as every scheme here sends it.
fn encode_hex(bytes: &[u8]) -> String {
    let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(b & 15));
    }
    out
}

/// A signature in base64: the standard alphabet, canonical, padded. Only
/// the one encoding of each byte string is read, so a signature's text
/// cannot be altered (padding dropped, trailing bits set) and still pass.
fn decode_base64_signature(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// A key in base64: the standard alphabet, padding optional and trailing
/// bits ignored, as the official Standard Webhooks libraries read keys
/// (senders show them both ways; the key is the user's, not the
/// attacker's, so leniency costs nothing). Surrounding whitespace, as a
/// paste leaves it, is no part of the key.
fn decode_base64_key(text: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(text.trim_ascii()).ok()
}

fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A header for a `sign` helper's output; the caller's text (an id) must
/// be a valid header value.
fn header_value(name: &str, text: &str) -> Result<HeaderValue, VerifyError> {
    HeaderValue::from_str(text).map_err(|_| malformed(name, "it must be visible ASCII"))
}

/// The map a `sign` helper returns, built from (name, value) pairs.
fn signed_headers(pairs: Vec<(&str, String)>) -> Result<HeaderMap, VerifyError> {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| malformed(name, "it is not a valid header name"))?;
        headers.insert(header_name, header_value(name, &value)?);
    }
    Ok(headers)
}

/// Helpers shared by the schemes' tests.
#[cfg(test)]
mod testing {
    use super::VerifyError;
    use http::{HeaderMap, HeaderName, HeaderValue};

    /// A header map from (name, value) pairs; a name given twice is
    /// appended, so repeated headers can be built.
    pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
                HeaderValue::from_str(value).expect("test header value"),
            );
        }
        map
    }

    /// `map` with `name` replaced by one value.
    pub fn with(mut map: HeaderMap, name: &str, value: &str) -> HeaderMap {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_str(value).expect("test header value"),
        );
        map
    }

    /// `map` with `name` given a second value.
    pub fn repeated(mut map: HeaderMap, name: &str) -> HeaderMap {
        let value = map.get(name).expect("header to repeat").clone();
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            value,
        );
        map
    }

    /// `map` with `name` holding a byte that is not ASCII.
    pub fn non_ascii(mut map: HeaderMap, name: &str) -> HeaderMap {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_bytes("caf\u{e9}".as_bytes()).expect("obs-text is allowed"),
        );
        map
    }

    /// `map` without `name`.
    pub fn without(mut map: HeaderMap, name: &str) -> HeaderMap {
        map.remove(name);
        map
    }

    /// The error's text holds none of `secrets` (keys, signatures).
    pub fn assert_quiet(error: &VerifyError, secrets: &[&str]) {
        let text = error.to_string();
        for secret in secrets {
            if secret.len() >= 4 {
                assert!(!text.contains(secret), "{text:?} leaks {secret:?}");
            }
        }
        let debug = format!("{error:?}");
        for secret in secrets {
            if secret.len() >= 4 {
                assert!(!debug.contains(secret), "{debug:?} leaks {secret:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timestamp_passes_exactly_at_the_tolerance_and_fails_one_past() {
        assert_eq!(check_timestamp(1000, 1000, 300), Ok(()));
        assert_eq!(check_timestamp(700, 1000, 300), Ok(()));
        assert_eq!(check_timestamp(1300, 1000, 300), Ok(()));
        assert!(matches!(
            check_timestamp(699, 1000, 300),
            Err(VerifyError::Stale { .. })
        ));
        assert!(matches!(
            check_timestamp(1301, 1000, 300),
            Err(VerifyError::Stale { .. })
        ));
        assert_eq!(check_timestamp(5, 5, 0), Ok(()));
        assert!(check_timestamp(6, 5, 0).is_err());
    }

    #[test]
    fn the_timestamp_check_does_not_overflow_at_the_extremes() {
        for (ts, now) in [
            (i64::MIN, i64::MAX),
            (i64::MAX, i64::MIN),
            (i64::MIN, 0),
            (0, i64::MIN),
            (i64::MAX, 0),
        ] {
            let err = check_timestamp(ts, now, u32::MAX).expect_err("far apart");
            let _ = err.to_string();
        }
        assert_eq!(check_timestamp(i64::MAX, i64::MAX, u32::MAX), Ok(()));
        assert_eq!(check_timestamp(i64::MIN, i64::MIN, 0), Ok(()));
        assert_eq!(
            check_timestamp(i64::MIN + i64::from(u32::MAX), i64::MIN, u32::MAX),
            Ok(())
        );
        assert_eq!(
            check_timestamp(i64::MAX - i64::from(u32::MAX), i64::MAX, u32::MAX),
            Ok(())
        );
    }

    #[test]
    fn a_stale_error_says_how_far_and_which_way() {
        let past = check_timestamp(600, 1000, 300).unwrap_err();
        assert_eq!(
            past.to_string(),
            "the signed timestamp is -400 s from now, outside the ±300 s tolerance"
        );
        let future = check_timestamp(1400, 1000, 300).unwrap_err();
        assert!(future.to_string().contains("+400 s"), "{future}");
        let extreme = check_timestamp(i64::MIN, i64::MAX, 1).unwrap_err();
        assert!(
            extreme.to_string().contains("-18446744073709551615 s"),
            "{extreme}"
        );
    }

    #[test]
    fn the_compare_checks_lengths_and_bytes() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(ct_eq(b"", b""));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"ab", b"abc"));
        assert!(!ct_eq(b"", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
    }

    #[test]
    fn hex_decodes_either_case_and_refuses_the_rest() {
        assert_eq!(decode_hex("00ff"), Some(vec![0, 255]));
        assert_eq!(decode_hex("AbCd"), Some(vec![0xab, 0xcd]));
        assert_eq!(decode_hex(""), Some(vec![]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("+1"), None);
        assert_eq!(encode_hex(&[0, 1, 0xab, 0xff]), "0001abff");
    }

    #[test]
    fn base64_signatures_must_be_canonical() {
        assert_eq!(decode_base64_signature("AAE="), Some(vec![0, 1]));
        assert_eq!(decode_base64_signature("AAE"), None, "padding dropped");
        assert_eq!(decode_base64_signature("AAF="), None, "trailing bits set");
        assert_eq!(decode_base64_key(b"AAE"), Some(vec![0, 1]));
        assert_eq!(decode_base64_key(b" AAE=\n"), Some(vec![0, 1]));
    }

    #[test]
    fn timestamps_are_integer_seconds_only() {
        assert_eq!(parse_timestamp("t", "1614265330"), Ok(1614265330));
        assert_eq!(parse_timestamp("t", "0"), Ok(0));
        assert_eq!(parse_timestamp("t", "-5"), Ok(-5));
        for bad in ["", "-", "+5", " 5", "5 ", "1.5", "0x10", "1e9", "١٢"] {
            assert!(
                matches!(
                    parse_timestamp("t", bad),
                    Err(VerifyError::Malformed { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(parse_timestamp("t", "99999999999999999999").is_err());
        assert_eq!(parse_timestamp("t", "-9223372036854775808"), Ok(i64::MIN));
    }

    #[test]
    fn header_names_are_case_insensitive_and_repeats_are_malformed() {
        let map = testing::headers(&[("x-a", "1"), ("x-b", "2"), ("x-b", "3")]);
        assert_eq!(header(&map, "X-A"), Ok("1"));
        assert!(matches!(
            header(&map, "x-b"),
            Err(VerifyError::Malformed { .. })
        ));
        assert_eq!(
            header(&map, "x-c"),
            Err(VerifyError::MissingHeader("x-c".to_owned()))
        );
        assert_eq!(optional_header(&map, "not a name"), Ok(None));
        let odd = testing::non_ascii(map, "x-a");
        assert!(matches!(
            header(&odd, "x-a"),
            Err(VerifyError::Malformed { .. })
        ));
    }

    #[test]
    fn names_are_as_written_in_a_graph() {
        assert_eq!(Scheme::StandardWebhooks.name(), "standard-webhooks");
        assert_eq!(Scheme::Github.name(), "github");
        assert_eq!(Scheme::Stripe.name(), "stripe");
        assert_eq!(Scheme::Slack.name(), "slack");
        assert_eq!(Scheme::Discord.name(), "discord-interactions");
    }
}
