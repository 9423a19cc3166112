//! Discord interactions: `X-Signature-Ed25519` (hex, 64 bytes) is an
//! Ed25519 signature of `X-Signature-Timestamp` followed by the body,
//! under the application's public key (64 hex digits, as the developer
//! portal shows it).
//!
//! Signatures are checked with `verify_strict`, which refuses
//! non-canonical signatures and small-order keys, so one signature has no
//! second form that would also pass (and slip past a replay check).
//! A small-order key is refused up front by [`check_key`] as well.
//!
//! The timestamp and body are joined with no separator. Moving digits
//! between them changes the timestamp by a factor of ten or more, which
//! the tolerance check refuses, and Discord's bodies are JSON objects,
//! which start with `{`.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use http::HeaderMap;

use super::{
    Signed, VerifyError, decode_hex, encode_hex, header, parse_timestamp, replay_key,
    signed_headers,
};

/// The signature header: 128 hex digits.
pub const SIGNATURE: &str = "X-Signature-Ed25519";
/// The signed timestamp header, integer unix seconds.
pub const TIMESTAMP: &str = "X-Signature-Timestamp";

const KEY_FORMAT: &str = "expected the application's public key as 64 hex digits (the developer portal's \"Public Key\")";

fn public_key(key: &[u8]) -> Result<VerifyingKey, VerifyError> {
    let bytes: [u8; 32] = std::str::from_utf8(key.trim_ascii())
        .ok()
        .and_then(decode_hex)
        .and_then(|b| b.try_into().ok())
        .ok_or(VerifyError::BadKey(KEY_FORMAT))?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
        VerifyError::BadKey("the public key is not an Ed25519 public key (not a curve point)")
    })?;
    if key.is_weak() {
        return Err(VerifyError::BadKey(
            "the public key is a small-order point, which would accept forged signatures; \
             store the application's real public key",
        ));
    }
    Ok(key)
}

/// Checks the key: 64 hex digits of an Ed25519 public key that is a curve
/// point of large order.
pub fn check_key(key: &[u8]) -> Result<(), VerifyError> {
    public_key(key).map(drop)
}

/// Verifies a Discord interaction. The interaction id is in the body, so
/// [`Signed::delivery_id`] is None.
pub fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<Signed, VerifyError> {
    let key = public_key(key)?;
    let signature = header(headers, SIGNATURE)?;
    let timestamp_text = header(headers, TIMESTAMP)?;
    let timestamp = parse_timestamp(TIMESTAMP, timestamp_text)?;
    let matched = check_signature(&key, signature, timestamp_text.as_bytes(), body)?;
    Ok(Signed {
        timestamp: Some(timestamp),
        delivery_id: None,
        replay_key: replay_key(&matched),
    })
}

/// The signature's bytes if `signature_hex` is a strict Ed25519 signature
/// of `timestamp` + `body` under `key`.
fn check_signature(
    key: &VerifyingKey,
    signature_hex: &str,
    timestamp: &[u8],
    body: &[u8],
) -> Result<[u8; 64], VerifyError> {
    let mismatch = || VerifyError::Mismatch(SIGNATURE.to_owned());
    let bytes: [u8; 64] = decode_hex(signature_hex)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(mismatch)?;
    let message = [timestamp, body].concat();
    key.verify_strict(&message, &Signature::from_bytes(&bytes))
        .map_err(|_| mismatch())?;
    Ok(bytes)
}

/// For tests and stand-ins: the two headers Discord would send with `body`
/// at `timestamp`, signed with the Ed25519 key of the 32-byte `seed`.
/// Verify with [`public_key_hex`] of the same seed.
pub fn sign(seed: &[u8; 32], timestamp: i64, body: &[u8]) -> Result<HeaderMap, VerifyError> {
    let ts = timestamp.to_string();
    let signature = SigningKey::from_bytes(seed).sign(&[ts.as_bytes(), body].concat());
    signed_headers(vec![
        (SIGNATURE, encode_hex(&signature.to_bytes())),
        (TIMESTAMP, ts),
    ])
}

/// For tests and stand-ins: the public key of `seed` as 64 hex digits, the
/// form a user stores.
pub fn public_key_hex(seed: &[u8; 32]) -> String {
    encode_hex(SigningKey::from_bytes(seed).verifying_key().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_quiet, non_ascii, repeated, with, without};
    use super::*;

    /// RFC 8032 section 7.1, TESTs 1 to 3: (secret key, public key,
    /// message, signature).
    const RFC8032: [(&str, &str, &str, &str); 3] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];

    const SEED: [u8; 32] = [42; 32];

    fn mismatch() -> VerifyError {
        VerifyError::Mismatch(SIGNATURE.to_owned())
    }

    fn seed_of(hex: &str) -> [u8; 32] {
        decode_hex(hex).unwrap().try_into().unwrap()
    }

    #[test]
    fn the_rfc_8032_vectors_verify_as_an_empty_timestamp_and_the_message() {
        // The RFC signs whole messages; split as timestamp "" + body, which
        // the header path cannot carry (an empty timestamp is malformed),
        // so the signature check is called directly.
        for (secret, public, message, signature) in RFC8032 {
            let key = public_key(public.as_bytes()).unwrap();
            let message = decode_hex(message).unwrap();
            let matched = check_signature(&key, signature, b"", &message).unwrap();
            assert_eq!(encode_hex(&matched), signature);
            // The public key derives from the seed, and signing is
            // deterministic: our signer gives the RFC's signature.
            let seed = seed_of(secret);
            assert_eq!(public_key_hex(&seed), public);
            let ours = SigningKey::from_bytes(&seed).sign(&message);
            assert_eq!(encode_hex(&ours.to_bytes()), signature);
            // Any other message fails.
            let mut other = message.clone();
            other.push(0);
            assert_eq!(
                check_signature(&key, signature, b"", &other),
                Err(mismatch())
            );
        }
    }

    #[test]
    fn an_rfc_vector_split_at_any_point_verifies() {
        // TEST 3's two bytes split between timestamp and body.
        let (_, public, _, signature) = RFC8032[2];
        let key = public_key(public.as_bytes()).unwrap();
        for (ts, body) in [
            (&[][..], &[0xaf, 0x82][..]),
            (&[0xaf], &[0x82]),
            (&[0xaf, 0x82], &[]),
        ] {
            assert!(check_signature(&key, signature, ts, body).is_ok());
        }
    }

    #[test]
    fn a_signed_request_round_trips() {
        let signed = sign(&SEED, 1700000000, br#"{"type":1}"#).unwrap();
        let key = public_key_hex(&SEED);
        let proof = verify(key.as_bytes(), &signed, br#"{"type":1}"#).unwrap();
        assert_eq!(proof.timestamp, Some(1700000000));
        assert_eq!(proof.delivery_id, None);
        let sig = decode_hex(signed[SIGNATURE].to_str().unwrap()).unwrap();
        assert_eq!(proof.replay_key, replay_key(&sig));
        // Uppercase hex, and a key pasted with a newline, also pass.
        let upper = signed[SIGNATURE].to_str().unwrap().to_ascii_uppercase();
        let upper = with(signed.clone(), SIGNATURE, &upper);
        assert!(
            verify(
                format!("{}\n", key.to_ascii_uppercase()).as_bytes(),
                &upper,
                br#"{"type":1}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn a_wrong_key_a_changed_body_or_timestamp_fails() {
        let body = br#"{"type":1}"#;
        let signed = sign(&SEED, 1700000000, body).unwrap();
        let other = public_key_hex(&[43; 32]);
        assert_eq!(verify(other.as_bytes(), &signed, body), Err(mismatch()));
        let key = public_key_hex(&SEED);
        assert_eq!(
            verify(key.as_bytes(), &signed, br#"{"type":2}"#),
            Err(mismatch())
        );
        let later = with(signed, TIMESTAMP, "1700000001");
        assert_eq!(verify(key.as_bytes(), &later, body), Err(mismatch()));
    }

    #[test]
    fn empty_truncated_overlong_and_flipped_signatures_fail() {
        let body = b"{}";
        let signed = sign(&SEED, 1700000000, body).unwrap();
        let key = public_key_hex(&SEED);
        let hex = signed[SIGNATURE].to_str().unwrap().to_owned();
        let mut variants = vec![
            String::new(),
            hex[..127].to_owned(),
            hex[..126].to_owned(),
            hex[..64].to_owned(),
            format!("{hex}0"),
            format!("{hex}00"),
        ];
        for i in [0, 63, 64, 127] {
            let mut bytes = hex.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            variants.push(String::from_utf8(bytes).unwrap());
        }
        for variant in variants {
            let request = with(signed.clone(), SIGNATURE, &variant);
            assert_eq!(
                verify(key.as_bytes(), &request, body),
                Err(mismatch()),
                "{variant}"
            );
        }
    }

    #[test]
    fn each_header_is_required_once_and_in_ascii() {
        let signed = sign(&SEED, 1700000000, b"{}").unwrap();
        let key = public_key_hex(&SEED);
        for name in [SIGNATURE, TIMESTAMP] {
            assert_eq!(
                verify(key.as_bytes(), &without(signed.clone(), name), b"{}"),
                Err(VerifyError::MissingHeader(name.to_owned()))
            );
            for broken in [
                repeated(signed.clone(), name),
                non_ascii(signed.clone(), name),
            ] {
                match verify(key.as_bytes(), &broken, b"{}") {
                    Err(VerifyError::Malformed { header, .. }) => assert_eq!(header, name),
                    other => panic!("{name}: {other:?}"),
                }
            }
        }
        let no_ts = with(signed, TIMESTAMP, "");
        assert!(matches!(
            verify(key.as_bytes(), &no_ts, b"{}"),
            Err(VerifyError::Malformed { .. })
        ));
    }

    #[test]
    fn a_key_that_does_not_decode_or_is_weak_is_refused() {
        let good = public_key_hex(&SEED);
        let mut identity = "01".to_owned();
        identity.push_str(&"00".repeat(31));
        let minus_one = format!("ec{}7f", "ff".repeat(30));
        let order_four = "00".repeat(32);
        // Not on the curve: y = 2 has no x.
        let off_curve = format!("02{}", "00".repeat(31));
        for key in [
            String::new(),
            good[..62].to_owned(),
            format!("{good}00"),
            format!("{}zz", &good[..62]),
            "whpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned(),
            identity,
            minus_one,
            order_four,
            off_curve,
        ] {
            let err = check_key(key.as_bytes()).unwrap_err();
            assert!(matches!(err, VerifyError::BadKey(_)), "{key}");
            let signed = sign(&SEED, 1700000000, b"{}").unwrap();
            assert_eq!(verify(key.as_bytes(), &signed, b"{}"), Err(err.clone()));
            assert_quiet(&err, &[&key]);
        }
        assert_eq!(check_key(good.as_bytes()), Ok(()));
    }

    #[test]
    fn a_small_order_key_with_a_signature_that_would_pass_loosely_is_refused() {
        // With A = identity and R = identity, S = 0 satisfies the
        // cofactorless equation [S]B = R + [k]A for every message: the
        // forgery that small-order keys allow. Strict verification refuses
        // it even when the key check is bypassed.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let key = VerifyingKey::from_bytes(&identity).unwrap();
        let mut forged = [0u8; 64];
        forged[0] = 1;
        let forged = encode_hex(&forged);
        assert_eq!(
            check_signature(&key, &forged, b"1700000000", b"{}"),
            Err(mismatch())
        );
    }

    #[test]
    fn errors_never_show_the_key_or_the_signature() {
        let signed = sign(&SEED, 1700000000, b"{}").unwrap();
        let key = public_key_hex(&SEED);
        let hex = signed[SIGNATURE].to_str().unwrap().to_owned();
        for err in [
            verify(public_key_hex(&[1; 32]).as_bytes(), &signed, b"{}").unwrap_err(),
            verify(key.as_bytes(), &signed, b"x").unwrap_err(),
            verify(key.as_bytes(), &repeated(signed.clone(), SIGNATURE), b"{}").unwrap_err(),
            verify(&key.as_bytes()[1..], &signed, b"{}").unwrap_err(),
        ] {
            assert_quiet(&err, &[&key, &key[1..20], &hex, &hex[..20]]);
        }
    }
}
