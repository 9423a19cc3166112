//! [Standard Webhooks 1.0](https://www.standardwebhooks.com/): headers
//! `webhook-id`, `webhook-timestamp` and `webhook-signature`, signed
//! content `{id}.{timestamp}.{body}`.
//!
//! The signature header is a space-separated list of `version,base64`
//! entries, so a sender rotating its key can send both signatures. The key
//! decides the version that counts:
//!
//! - `whsec_` + base64 of a shared secret (the prefix is optional, as the
//!   spec allows): `v1`, HMAC-SHA256.
//! - `whpk_` + base64 of a 32-byte Ed25519 public key: `v1a`, Ed25519.
//!
//! Any one entry of that version that matches passes. Entries of other
//! versions are skipped and never pass on their own, so an attacker cannot
//! pick the algorithm (a `v1` HMAC keyed with a public key is refused).
//! An empty header, an empty signature after the comma, or a signature
//! that is truncated or overlong fails closed: each is compared as bytes
//! with its length checked first.
//!
//! The id must not contain `.`: the spec asks that of senders, since with
//! it the signed content has more than one reading (`a.1` + `2` versus
//! `a` + `1.2`), and a receiver that refuses such ids cannot be fooled by
//! one.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use http::HeaderMap;

use super::{
    MAX_SIGNATURES, Signed, VerifyError, ct_eq, decode_base64_key, decode_base64_signature,
    encode_base64, header, hmac_sha256, malformed, parse_timestamp, replay_key, signed_headers,
};

/// The delivery id header; signed, and the same on every retry.
pub const ID: &str = "webhook-id";
/// The signed timestamp header, integer unix seconds.
pub const TIMESTAMP: &str = "webhook-timestamp";
/// The signature header: space-separated `version,base64` entries.
pub const SIGNATURE: &str = "webhook-signature";

/// What a stored key verifies with.
enum Key {
    /// `v1`: the decoded shared secret.
    Symmetric(Vec<u8>),
    /// `v1a`: a public key that is not of small order.
    Public(VerifyingKey),
}

const WHSEC_FORMAT: &str = "expected `whsec_` followed by the base64 of the secret \
     (the prefix is optional), or `whpk_` followed by the base64 of a 32-byte Ed25519 public key";
const WHPK_FORMAT: &str = "expected `whpk_` followed by the base64 of a 32-byte Ed25519 public key";
const WHSK_FORMAT: &str =
    "expected `whsk_` followed by the base64 of a 32-byte Ed25519 seed (for signing only)";

fn parse_key(key: &[u8]) -> Result<Key, VerifyError> {
    let text = key.trim_ascii();
    if let Some(public) = text.strip_prefix(b"whpk_") {
        let bytes: [u8; 32] = decode_base64_key(public)
            .and_then(|b| b.try_into().ok())
            .ok_or(VerifyError::BadKey(WHPK_FORMAT))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
            VerifyError::BadKey("the whpk_ key is not an Ed25519 public key (not a curve point)")
        })?;
        if key.is_weak() {
            return Err(VerifyError::BadKey(
                "the whpk_ key is a small-order point, which would accept forged signatures; \
                 store the sender's real public key",
            ));
        }
        return Ok(Key::Public(key));
    }
    if text.starts_with(b"whsk_") {
        return Err(VerifyError::BadKey(
            "this is an Ed25519 signing key (whsk_…), which must stay with the sender; \
             store its public key (whpk_…)",
        ));
    }
    let secret = text.strip_prefix(b"whsec_").unwrap_or(text);
    match decode_base64_key(secret) {
        Some(bytes) if !bytes.is_empty() => Ok(Key::Symmetric(bytes)),
        Some(_) => Err(VerifyError::BadKey(
            "the secret after `whsec_` is empty; store the whole signing secret",
        )),
        None => Err(VerifyError::BadKey(WHSEC_FORMAT)),
    }
}

/// The `whsk_` seed a [`sign`] key carries.
fn parse_signing_key(key: &[u8]) -> Result<SigningKey, VerifyError> {
    let seed: [u8; 32] = key
        .trim_ascii()
        .strip_prefix(b"whsk_")
        .and_then(decode_base64_key)
        .and_then(|b| b.try_into().ok())
        .ok_or(VerifyError::BadKey(WHSK_FORMAT))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Checks the key's format: `whsec_…` (or bare base64) or `whpk_…`.
pub fn check_key(key: &[u8]) -> Result<(), VerifyError> {
    parse_key(key).map(drop)
}

/// Verifies a Standard Webhooks delivery. The returned timestamp is for
/// [`check_timestamp`](super::check_timestamp); the delivery id is
/// `webhook-id`, which the signature covers.
pub fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<Signed, VerifyError> {
    let key = parse_key(key)?;
    let id = header(headers, ID)?;
    let timestamp_text = header(headers, TIMESTAMP)?;
    let signatures = header(headers, SIGNATURE)?;
    check_id(id)?;
    let timestamp = parse_timestamp(TIMESTAMP, timestamp_text)?;
    let content: [&[u8]; 5] = [id.as_bytes(), b".", timestamp_text.as_bytes(), b".", body];
    let matched = match key {
        Key::Symmetric(secret) => {
            let expected = hmac_sha256(&secret, &content)?;
            first_match(signatures, "v1", |signature| ct_eq(signature, &expected))?
        }
        Key::Public(public) => {
            let message = content.concat();
            first_match(signatures, "v1a", |signature| {
                <[u8; 64]>::try_from(signature).is_ok_and(|bytes| {
                    public
                        .verify_strict(&message, &Signature::from_bytes(&bytes))
                        .is_ok()
                })
            })?
        }
    };
    Ok(Signed {
        timestamp: Some(timestamp),
        delivery_id: Some(id.to_owned()),
        replay_key: replay_key(&matched),
    })
}

fn check_id(id: &str) -> Result<(), VerifyError> {
    if id.is_empty() {
        return Err(malformed(ID, "it is empty"));
    }
    if id.contains('.') {
        return Err(malformed(
            ID,
            "it contains `.`, which makes the signed `{id}.{timestamp}.{body}` ambiguous",
        ));
    }
    Ok(())
}

/// The bytes of the first `version` entry that passes `check`. Entries of
/// other versions, and entries without a comma, are skipped; an entry of
/// the version whose base64 does not decode simply does not match.
fn first_match(
    header_text: &str,
    version: &str,
    check: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, VerifyError> {
    let mut tried = 0;
    for entry in header_text.split(' ') {
        let Some((entry_version, signature)) = entry.split_once(',') else {
            continue;
        };
        if entry_version != version {
            continue;
        }
        tried += 1;
        if tried > MAX_SIGNATURES {
            return Err(malformed(
                SIGNATURE,
                "it carries more than 16 signatures of the key's version",
            ));
        }
        if let Some(bytes) = decode_base64_signature(signature)
            && check(&bytes)
        {
            return Ok(bytes);
        }
    }
    Err(VerifyError::Mismatch(SIGNATURE.to_owned()))
}

/// For tests and stand-ins: the three headers of a delivery of `body`
/// signed with `key`. A `whsec_` key (or bare base64) signs `v1`; a `whsk_`
/// key, `whsk_` + base64 of a 32-byte Ed25519 seed, signs `v1a` (verify it
/// with [`public_key`]'s `whpk_` key). The id must be non-empty visible
/// ASCII without `.`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Result<HeaderMap, VerifyError> {
    check_id(id)?;
    let timestamp_text = timestamp.to_string();
    let content: [&[u8]; 5] = [id.as_bytes(), b".", timestamp_text.as_bytes(), b".", body];
    let signature = if key.trim_ascii().starts_with(b"whsk_") {
        let signing = parse_signing_key(key)?;
        let signature = signing.sign(&content.concat());
        format!("v1a,{}", encode_base64(&signature.to_bytes()))
    } else {
        let Key::Symmetric(secret) = parse_key(key)? else {
            return Err(VerifyError::BadKey(
                "a whpk_ public key cannot sign; sign with its whsk_ key",
            ));
        };
        format!("v1,{}", encode_base64(&hmac_sha256(&secret, &content)?))
    };
    signed_headers(vec![
        (ID, id.to_owned()),
        (TIMESTAMP, timestamp_text),
        (SIGNATURE, signature),
    ])
}

/// For tests and stand-ins: the `whpk_` public key of a `whsk_` signing
/// key, as a receiver stores it.
pub fn public_key(signing_key: &[u8]) -> Result<String, VerifyError> {
    let signing = parse_signing_key(signing_key)?;
    Ok(format!(
        "whpk_{}",
        encode_base64(signing.verifying_key().as_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_quiet, headers, non_ascii, repeated, with, without};
    use super::*;

    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn request(signature: &str) -> HeaderMap {
        headers(&[
            (ID, MSG_ID),
            (TIMESTAMP, "1614265330"),
            (SIGNATURE, signature),
        ])
    }

    fn mismatch() -> VerifyError {
        VerifyError::Mismatch(SIGNATURE.to_owned())
    }

    /// The base64 part of a `v1,…` entry, decoded.
    fn signature_bytes(entry: &str) -> Vec<u8> {
        let (_, b64) = entry.split_once(',').expect("an entry");
        decode_base64_signature(b64).expect("base64")
    }

    #[test]
    fn the_published_vector_signs_and_verifies() {
        // The vector every official library tests (Python, JavaScript,
        // Go, Ruby, PHP, C#, Java).
        let signed = sign(KEY.as_bytes(), MSG_ID, TS, BODY).unwrap();
        assert_eq!(signed[SIGNATURE], EXPECTED);
        assert_eq!(signed[ID], MSG_ID);
        assert_eq!(signed[TIMESTAMP], "1614265330");
        let proof = verify(KEY.as_bytes(), &request(EXPECTED), BODY).unwrap();
        assert_eq!(proof.timestamp, Some(TS));
        assert_eq!(proof.delivery_id.as_deref(), Some(MSG_ID));
        assert_eq!(proof.replay_key, replay_key(&signature_bytes(EXPECTED)));
    }

    #[test]
    fn the_rust_library_vector_signs_and_verifies() {
        // libraries/rust/src/lib.rs `test_sign` in the official repository.
        let key = b"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        let signed = sign(key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body).unwrap();
        assert_eq!(signed[SIGNATURE], expected);
        assert!(verify(key, &signed, body).is_ok());
    }

    #[test]
    fn the_prefix_and_padding_of_the_key_are_optional() {
        // As the Python library's tests: with and without `whsec_`, and
        // base64 that needs one or two `=` given without them.
        for key in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
        ] {
            assert!(verify(key.as_bytes(), &request(EXPECTED), BODY).is_ok());
        }
        for (bare, padded) in [
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS=",
            ),
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr==",
            ),
        ] {
            let signed = sign(padded.as_bytes(), MSG_ID, TS, BODY).unwrap();
            assert!(verify(bare.as_bytes(), &signed, BODY).is_ok());
            assert!(verify(format!("whsec_{bare}").as_bytes(), &signed, BODY).is_ok());
        }
    }

    #[test]
    fn a_good_signature_passes_and_a_wrong_key_fails() {
        let signed = sign(KEY.as_bytes(), "msg_1", 1700000000, b"hello").unwrap();
        assert!(verify(KEY.as_bytes(), &signed, b"hello").is_ok());
        let other = b"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        assert_eq!(verify(other, &signed, b"hello"), Err(mismatch()));
    }

    #[test]
    fn a_body_changed_by_one_byte_fails() {
        let mut body = BODY.to_vec();
        body[3] ^= 1;
        assert_eq!(
            verify(KEY.as_bytes(), &request(EXPECTED), &body),
            Err(mismatch())
        );
        body[3] ^= 1;
        body.push(b' ');
        assert_eq!(
            verify(KEY.as_bytes(), &request(EXPECTED), &body),
            Err(mismatch())
        );
    }

    #[test]
    fn signed_headers_cannot_be_changed() {
        let changed_ts = with(request(EXPECTED), TIMESTAMP, "1614265331");
        assert_eq!(verify(KEY.as_bytes(), &changed_ts, BODY), Err(mismatch()));
        let changed_id = with(request(EXPECTED), ID, "msg_p5jXN8AQM9LWM0D4loKWxJeK");
        assert_eq!(verify(KEY.as_bytes(), &changed_id, BODY), Err(mismatch()));
    }

    #[test]
    fn an_empty_signature_fails_unlike_the_standardwebhooks_crate_before_its_length_check() {
        // The official Rust library compared signatures only up to the
        // shorter one's length, so `v1,` passed for any body (fixed in
        // standard-webhooks commit 98abef1, Feb 2024). Here it is a
        // mismatch, and so is an empty header.
        for signature in ["v1,", "", " ", "v1", "v1, ", "v1,="] {
            assert_eq!(
                verify(KEY.as_bytes(), &request(signature), BODY),
                Err(mismatch()),
                "{signature:?}"
            );
        }
    }

    #[test]
    fn a_truncated_or_overlong_signature_fails() {
        let bytes = signature_bytes(EXPECTED);
        for cut in [1, 16, 31] {
            let short = format!("v1,{}", encode_base64(&bytes[..cut]));
            assert_eq!(
                verify(KEY.as_bytes(), &request(&short), BODY),
                Err(mismatch())
            );
        }
        // The text cut short: the padding, then a character more.
        for end in [EXPECTED.len() - 1, EXPECTED.len() - 2, 8] {
            let short = &EXPECTED[..end];
            assert_eq!(
                verify(KEY.as_bytes(), &request(short), BODY),
                Err(mismatch())
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        let long = format!("v1,{}", encode_base64(&long));
        assert_eq!(
            verify(KEY.as_bytes(), &request(&long), BODY),
            Err(mismatch())
        );
        let appended = format!("{EXPECTED}A");
        assert_eq!(
            verify(KEY.as_bytes(), &request(&appended), BODY),
            Err(mismatch())
        );
    }

    #[test]
    fn only_the_keys_version_counts() {
        // The right signature under an unknown version (the Java
        // library's `v2` scenario), or under v1a, does not pass.
        let (_, b64) = EXPECTED.split_once(',').unwrap();
        for version in ["v2", "v1a", "V1", "v0"] {
            let entry = format!("{version},{b64}");
            assert_eq!(
                verify(KEY.as_bytes(), &request(&entry), BODY),
                Err(mismatch())
            );
        }
        let spaced = format!("v2,{b64}  v3,{b64}");
        assert_eq!(
            verify(KEY.as_bytes(), &request(&spaced), BODY),
            Err(mismatch())
        );
    }

    #[test]
    fn any_one_signature_of_several_may_match() {
        // The Python library's multi-signature case: the right one second.
        let header = format!(
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {EXPECTED} v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
        );
        let proof = verify(KEY.as_bytes(), &request(&header), BODY).unwrap();
        assert_eq!(proof.replay_key, replay_key(&signature_bytes(EXPECTED)));
        let none = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ=";
        assert_eq!(
            verify(KEY.as_bytes(), &request(none), BODY),
            Err(mismatch())
        );
        // A bad entry before the good one does not stop the search.
        let junk = format!("v1,!!! nocomma v1, {EXPECTED}");
        assert!(verify(KEY.as_bytes(), &request(&junk), BODY).is_ok());
    }

    #[test]
    fn too_many_signatures_are_refused() {
        let mut entries = vec!["v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="; 16];
        entries.push(EXPECTED);
        let header = entries.join(" ");
        assert!(matches!(
            verify(KEY.as_bytes(), &request(&header), BODY),
            Err(VerifyError::Malformed { .. })
        ));
        entries.remove(0);
        assert!(verify(KEY.as_bytes(), &request(&entries.join(" ")), BODY).is_ok());
    }

    #[test]
    fn each_header_is_required_once_and_in_ascii() {
        for name in [ID, TIMESTAMP, SIGNATURE] {
            assert_eq!(
                verify(KEY.as_bytes(), &without(request(EXPECTED), name), BODY),
                Err(VerifyError::MissingHeader(name.to_owned()))
            );
            for broken in [
                repeated(request(EXPECTED), name),
                non_ascii(request(EXPECTED), name),
            ] {
                match verify(KEY.as_bytes(), &broken, BODY) {
                    Err(VerifyError::Malformed { header, .. }) => assert_eq!(header, name),
                    other => panic!("{name}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn the_id_and_timestamp_must_have_one_reading() {
        for (name, value) in [
            (ID, "msg.1"),
            (ID, ""),
            (TIMESTAMP, "+1614265330"),
            (TIMESTAMP, "1614265330.0"),
            (TIMESTAMP, "hello"),
            (TIMESTAMP, ""),
        ] {
            assert!(
                matches!(
                    verify(KEY.as_bytes(), &with(request(EXPECTED), name, value), BODY),
                    Err(VerifyError::Malformed { .. })
                ),
                "{name}: {value:?}"
            );
        }
        assert!(sign(KEY.as_bytes(), "a.b", TS, BODY).is_err());
    }

    #[test]
    fn a_key_that_does_not_decode_is_reported() {
        for key in [
            &b"whsec_!!!not base64"[..],
            b"whsec_",
            b"",
            b"whpk_AAAA",
            b"whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            b"\xff\xfe",
        ] {
            let err = check_key(key).unwrap_err();
            assert!(matches!(err, VerifyError::BadKey(_)), "{key:?}");
            assert_eq!(verify(key, &request(EXPECTED), BODY), Err(err.clone()));
            // The message may name the format (`whsec_`), never the key.
            let text = std::str::from_utf8(key).unwrap_or("");
            let secret = text.get(5..).unwrap_or("").trim_start_matches('_');
            assert_quiet(&err, &[secret]);
        }
        assert_eq!(check_key(KEY.as_bytes()), Ok(()));
    }

    #[test]
    fn errors_never_show_the_key_or_the_signature() {
        let (_, b64) = EXPECTED.split_once(',').unwrap();
        let secrets = [KEY, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b64, EXPECTED];
        let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let errors = [
            verify(other.as_bytes(), &request(EXPECTED), BODY).unwrap_err(),
            verify(KEY.as_bytes(), &request(EXPECTED), b"x").unwrap_err(),
            verify(
                KEY.as_bytes(),
                &repeated(request(EXPECTED), SIGNATURE),
                BODY,
            )
            .unwrap_err(),
            verify(
                b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw!",
                &request(EXPECTED),
                BODY,
            )
            .unwrap_err(),
        ];
        for err in &errors {
            assert_quiet(err, &secrets);
            assert_quiet(err, &[other, "C2FVsBQIhrscChlQIMV"]);
        }
    }

    // v1a: Ed25519.

    const SEED: [u8; 32] = [7; 32];

    fn whsk() -> String {
        format!("whsk_{}", encode_base64(&SEED))
    }

    #[test]
    fn v1a_signs_with_the_seed_and_verifies_with_the_public_key() {
        let whpk = public_key(whsk().as_bytes()).unwrap();
        let expected_public = SigningKey::from_bytes(&SEED).verifying_key();
        assert_eq!(
            whpk,
            format!("whpk_{}", encode_base64(expected_public.as_bytes()))
        );
        let signed = sign(whsk().as_bytes(), "msg_1", 1700000000, b"{}").unwrap();
        let entry = signed[SIGNATURE].to_str().unwrap().to_owned();
        assert!(entry.starts_with("v1a,"), "{entry}");
        let proof = verify(whpk.as_bytes(), &signed, b"{}").unwrap();
        assert_eq!(proof.timestamp, Some(1700000000));
        // Rotation: an old key's signature first, then this one.
        let other = sign(
            format!("whsk_{}", encode_base64(&[8; 32])).as_bytes(),
            "msg_1",
            1700000000,
            b"{}",
        )
        .unwrap();
        let both = format!("{} {entry}", other[SIGNATURE].to_str().unwrap());
        let rotated = with(signed.clone(), SIGNATURE, &both);
        assert_eq!(verify(whpk.as_bytes(), &rotated, b"{}"), Ok(proof));
        assert_eq!(verify(whpk.as_bytes(), &other, b"{}"), Err(mismatch()));
        assert_eq!(verify(whpk.as_bytes(), &signed, b"{ }"), Err(mismatch()));
    }

    #[test]
    fn v1a_signatures_fail_when_truncated_flipped_or_extended() {
        let whpk = public_key(whsk().as_bytes()).unwrap();
        let signed = sign(whsk().as_bytes(), "msg_1", 1700000000, b"{}").unwrap();
        let bytes = signature_bytes(signed[SIGNATURE].to_str().unwrap());
        let mut variants = vec![
            bytes[..63].to_vec(),
            [&bytes[..], &[0]].concat(),
            Vec::new(),
        ];
        for i in [0, 31, 32, 63] {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x01;
            variants.push(flipped);
        }
        for variant in variants {
            let entry = format!("v1a,{}", encode_base64(&variant));
            let request = with(signed.clone(), SIGNATURE, &entry);
            assert_eq!(verify(whpk.as_bytes(), &request, b"{}"), Err(mismatch()));
        }
    }

    #[test]
    fn a_public_key_is_never_used_as_an_hmac_secret() {
        // Key confusion: anyone can compute a v1 HMAC keyed with the public
        // key's bytes. With a whpk_ key only v1a counts.
        let whpk = public_key(whsk().as_bytes()).unwrap();
        let public_bytes = decode_base64_key(&whpk.as_bytes()[5..]).unwrap();
        let forged = sign(
            format!("whsec_{}", encode_base64(&public_bytes)).as_bytes(),
            "msg_1",
            1700000000,
            b"{}",
        )
        .unwrap();
        assert_eq!(verify(whpk.as_bytes(), &forged, b"{}"), Err(mismatch()));
        let whpk_as_hmac = sign(whpk.as_bytes(), "msg_1", 1700000000, b"{}");
        assert!(matches!(whpk_as_hmac, Err(VerifyError::BadKey(_))));
    }

    #[test]
    fn a_small_order_public_key_is_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut minus_one = [0xff; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        for point in [identity, minus_one, [0; 32]] {
            let key = format!("whpk_{}", encode_base64(&point));
            assert!(
                matches!(check_key(key.as_bytes()), Err(VerifyError::BadKey(_))),
                "{key}"
            );
        }
    }
}
