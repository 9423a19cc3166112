//! GitHub webhooks: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256
//! of the body keyed with the webhook's secret exactly as stored.
//!
//! GitHub signs no timestamp, so [`Signed::timestamp`] is None and replays
//! are caught only by [`Signed::replay_key`]. The delivery id
//! (`X-GitHub-Delivery`) is returned but is not signed: a replay may carry
//! a new one, which is why the replay key hashes the signature instead.
//! The legacy `X-Hub-Signature` (HMAC-SHA1) is never read, even when it is
//! the only signature sent.

use http::HeaderMap;

use super::{
    Signed, VerifyError, check_raw_secret, ct_eq, decode_hex, encode_hex, header, hmac_sha256,
    optional_header, replay_key, signed_headers,
};

/// The signature header: `sha256=` and 64 hex digits.
pub const SIGNATURE: &str = "X-Hub-Signature-256";
/// The delivery id header (not signed).
pub const DELIVERY: &str = "X-GitHub-Delivery";

const PREFIX: &str = "sha256=";

/// Checks the key: the webhook secret as typed into GitHub, non-empty.
pub fn check_key(key: &[u8]) -> Result<(), VerifyError> {
    check_raw_secret(key)
}

/// Verifies a GitHub delivery.
pub fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<Signed, VerifyError> {
    check_key(key)?;
    let signature = header(headers, SIGNATURE)?;
    let delivery_id = optional_header(headers, DELIVERY)?
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let expected = hmac_sha256(key, &[body])?;
    // Anything but `sha256=` and hex of the right length is a mismatch,
    // like a wrong signature: there is no other version to fall back to.
    let given = signature
        .strip_prefix(PREFIX)
        .and_then(decode_hex)
        .filter(|given| ct_eq(given, &expected))
        .ok_or_else(|| VerifyError::Mismatch(SIGNATURE.to_owned()))?;
    Ok(Signed {
        timestamp: None,
        delivery_id,
        replay_key: replay_key(&given),
    })
}

/// For tests and stand-ins: the headers GitHub would send with `body`
/// signed with `key`, with `X-GitHub-Delivery` when an id is given.
pub fn sign(key: &[u8], delivery_id: Option<&str>, body: &[u8]) -> Result<HeaderMap, VerifyError> {
    check_key(key)?;
    let signature = format!("{PREFIX}{}", encode_hex(&hmac_sha256(key, &[body])?));
    let mut pairs = vec![(SIGNATURE, signature)];
    if let Some(id) = delivery_id {
        pairs.push((DELIVERY, id.to_owned()));
    }
    signed_headers(pairs)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_quiet, headers, non_ascii, repeated, with, without};
    use super::*;

    // GitHub's docs, "Validating webhook deliveries": the test values.
    const KEY: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const EXPECTED: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn request(signature: &str) -> HeaderMap {
        headers(&[
            (SIGNATURE, signature),
            (DELIVERY, "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ])
    }

    fn mismatch() -> VerifyError {
        VerifyError::Mismatch(SIGNATURE.to_owned())
    }

    #[test]
    fn the_published_vector_signs_and_verifies() {
        let signed = sign(KEY, None, BODY).unwrap();
        assert_eq!(signed[SIGNATURE], EXPECTED);
        let proof = verify(KEY, &request(EXPECTED), BODY).unwrap();
        assert_eq!(proof.timestamp, None);
        assert_eq!(
            proof.delivery_id.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        assert_eq!(
            proof.replay_key,
            replay_key(&decode_hex(&EXPECTED[7..]).unwrap())
        );
    }

    #[test]
    fn hex_of_either_case_passes() {
        let upper = format!("sha256={}", EXPECTED[7..].to_ascii_uppercase());
        assert!(verify(KEY, &request(&upper), BODY).is_ok());
        // The prefix is GitHub's exact text.
        let shouting = EXPECTED.to_ascii_uppercase();
        assert_eq!(verify(KEY, &request(&shouting), BODY), Err(mismatch()));
    }

    #[test]
    fn a_good_signature_passes_and_a_wrong_key_fails() {
        let signed = sign(b"another secret", Some("d-1"), b"{}").unwrap();
        let proof = verify(b"another secret", &signed, b"{}").unwrap();
        assert_eq!(proof.delivery_id.as_deref(), Some("d-1"));
        assert_eq!(verify(KEY, &signed, b"{}"), Err(mismatch()));
        assert_eq!(verify(b"another secret ", &signed, b"{}"), Err(mismatch()));
    }

    #[test]
    fn a_body_changed_by_one_byte_fails() {
        for body in [
            &b"Hello, World?"[..],
            b"hello, World!",
            b"Hello, World!\n",
            b"",
        ] {
            assert_eq!(verify(KEY, &request(EXPECTED), body), Err(mismatch()));
        }
    }

    #[test]
    fn empty_truncated_and_overlong_signatures_fail() {
        for signature in [
            "",
            "sha256=",
            "sha256",
            &EXPECTED[..EXPECTED.len() - 1],
            &EXPECTED[..EXPECTED.len() - 2],
            &EXPECTED[..20],
            &format!("{EXPECTED}0"),
            &format!("{EXPECTED}00"),
            &format!(" {EXPECTED}"),
        ] {
            assert_eq!(
                verify(KEY, &request(signature), BODY),
                Err(mismatch()),
                "{signature:?}"
            );
        }
    }

    #[test]
    fn other_algorithms_do_not_count() {
        let hex = &EXPECTED[7..];
        for signature in [
            format!("sha1={hex}"),
            format!("sha512={hex}"),
            hex.to_owned(),
        ] {
            assert_eq!(verify(KEY, &request(&signature), BODY), Err(mismatch()));
        }
        // Only the legacy SHA-1 header: missing, not a fallback.
        let legacy = headers(&[(
            "X-Hub-Signature",
            "sha1=0000000000000000000000000000000000000000",
        )]);
        assert_eq!(
            verify(KEY, &legacy, BODY),
            Err(VerifyError::MissingHeader(SIGNATURE.to_owned()))
        );
    }

    #[test]
    fn the_delivery_id_is_not_signed() {
        // Changing it keeps the replay key, so a replay is still caught.
        let first = verify(KEY, &request(EXPECTED), BODY).unwrap();
        let changed = verify(KEY, &with(request(EXPECTED), DELIVERY, "other"), BODY).unwrap();
        assert_eq!(changed.delivery_id.as_deref(), Some("other"));
        assert_eq!(changed.replay_key, first.replay_key);
        let absent = verify(KEY, &without(request(EXPECTED), DELIVERY), BODY).unwrap();
        assert_eq!(absent.delivery_id, None);
    }

    #[test]
    fn headers_must_be_single_and_ascii() {
        assert_eq!(
            verify(KEY, &without(request(EXPECTED), SIGNATURE), BODY),
            Err(VerifyError::MissingHeader(SIGNATURE.to_owned()))
        );
        for name in [SIGNATURE, DELIVERY] {
            for broken in [
                repeated(request(EXPECTED), name),
                non_ascii(request(EXPECTED), name),
            ] {
                match verify(KEY, &broken, BODY) {
                    Err(VerifyError::Malformed { header, .. }) => assert_eq!(header, name),
                    other => panic!("{name}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_key_that_cannot_be_a_secret_is_reported() {
        for key in [
            &b""[..],
            b"whpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ] {
            let err = check_key(key).unwrap_err();
            assert!(matches!(err, VerifyError::BadKey(_)));
            assert_eq!(verify(key, &request(EXPECTED), BODY), Err(err.clone()));
            assert_quiet(&err, &["AAAAAAAAAAAAAAAA"]);
        }
        assert_eq!(check_key(KEY), Ok(()));
    }

    #[test]
    fn errors_never_show_the_key_or_the_signature() {
        let secrets = [
            "It's a Secret to Everybody",
            "Secret",
            EXPECTED,
            &EXPECTED[7..],
            &EXPECTED[7..20],
        ];
        for err in [
            verify(b"wrong", &request(EXPECTED), BODY).unwrap_err(),
            verify(KEY, &request(EXPECTED), b"x").unwrap_err(),
            verify(KEY, &request(&EXPECTED[..30]), BODY).unwrap_err(),
            verify(KEY, &repeated(request(EXPECTED), SIGNATURE), BODY).unwrap_err(),
        ] {
            assert_quiet(&err, &secrets);
        }
    }
}
