//! Stripe webhooks: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>…]`, the
//! HMAC-SHA256 of `{t}.{body}` keyed with the endpoint's whole signing
//! secret, `whsec_` included (Stripe does not decode it).
//!
//! Several `v1` entries are normal while a secret is being rolled; any one
//! that matches passes. `v0` (Stripe's test-mode scheme) and unknown
//! schemes are ignored and never pass on their own. Exactly one `t=` must
//! be present: the timestamp is signed, and two would leave it unclear
//! which one was.

use http::HeaderMap;

use super::{
    MAX_SIGNATURES, Signed, VerifyError, check_raw_secret, ct_eq, decode_hex, encode_hex, header,
    hmac_sha256, malformed, parse_timestamp, replay_key, signed_headers,
};

/// The signature header.
pub const SIGNATURE: &str = "Stripe-Signature";

/// Checks the key: the endpoint's signing secret (`whsec_…`) as shown by
/// Stripe, used whole.
pub fn check_key(key: &[u8]) -> Result<(), VerifyError> {
    check_raw_secret(key)
}

/// Verifies a Stripe delivery. The event id is in the body, so
/// [`Signed::delivery_id`] is None.
pub fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<Signed, VerifyError> {
    check_key(key)?;
    let value = header(headers, SIGNATURE)?;
    let mut timestamp_text = None;
    let mut candidates = Vec::new();
    for item in value.split(',') {
        let Some((scheme, text)) = item.split_once('=') else {
            continue;
        };
        match scheme {
            "t" if timestamp_text.is_some() => {
                return Err(malformed(SIGNATURE, "it has more than one `t=` timestamp"));
            }
            "t" => timestamp_text = Some(text),
            "v1" => candidates.push(text),
            _ => {}
        }
    }
    let timestamp_text =
        timestamp_text.ok_or_else(|| malformed(SIGNATURE, "it has no `t=` timestamp"))?;
    let timestamp = parse_timestamp(SIGNATURE, timestamp_text)?;
    if candidates.len() > MAX_SIGNATURES {
        return Err(malformed(
            SIGNATURE,
            "it carries more than 16 `v1=` signatures",
        ));
    }
    let expected = hmac_sha256(key, &[timestamp_text.as_bytes(), b".", body])?;
    let given = candidates
        .into_iter()
        .filter_map(decode_hex)
        .find(|given| ct_eq(given, &expected))
        .ok_or_else(|| VerifyError::Mismatch(SIGNATURE.to_owned()))?;
    Ok(Signed {
        timestamp: Some(timestamp),
        delivery_id: None,
        replay_key: replay_key(&given),
    })
}

/// For tests and stand-ins: the `Stripe-Signature` header Stripe would
/// send with `body` at `timestamp`, signed with `key` (`t=…,v1=…`).
pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> Result<HeaderMap, VerifyError> {
    check_key(key)?;
    let t = timestamp.to_string();
    let signature = encode_hex(&hmac_sha256(key, &[t.as_bytes(), b".", body])?);
    signed_headers(vec![(SIGNATURE, format!("t={t},v1={signature}"))])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_quiet, headers, non_ascii, repeated, without};
    use super::*;

    // stripe-node's test payload and secret (test/Webhook.spec), at the
    // timestamp of Stripe's documented header example. Stripe publishes no
    // fixed signature, so the expected value was computed independently:
    //   (printf '1492774577.'; printf '%s' "$BODY") | openssl dgst -sha256 -hmac whsec_test_secret
    const KEY: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = b"{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\"\n}";
    const TS: i64 = 1492774577;
    const V1: &str = "c2f890decbc5ede7c5060bb9a6d31e0626a4342bacb9aeae2adb1bcea72f9812";
    // Stripe's documented example signature: another v1 that does not
    // match, standing in for the old secret's during a roll.
    const OTHER: &str = "5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd";

    fn request(value: &str) -> HeaderMap {
        headers(&[(SIGNATURE, value)])
    }

    fn mismatch() -> VerifyError {
        VerifyError::Mismatch(SIGNATURE.to_owned())
    }

    #[test]
    fn the_independently_computed_vector_signs_and_verifies() {
        let signed = sign(KEY, TS, BODY).unwrap();
        assert_eq!(signed[SIGNATURE], format!("t={TS},v1={V1}"));
        let proof = verify(KEY, &signed, BODY).unwrap();
        assert_eq!(proof.timestamp, Some(TS));
        assert_eq!(proof.delivery_id, None);
        assert_eq!(proof.replay_key, replay_key(&decode_hex(V1).unwrap()));
    }

    #[test]
    fn a_good_signature_passes_and_a_wrong_key_fails() {
        let signed = sign(b"whsec_abc", 1700000000, b"{}").unwrap();
        assert!(verify(b"whsec_abc", &signed, b"{}").is_ok());
        // The secret is used whole: without its prefix it is another key.
        assert_eq!(verify(b"abc", &signed, b"{}"), Err(mismatch()));
        assert_eq!(verify(KEY, &signed, b"{}"), Err(mismatch()));
    }

    #[test]
    fn a_body_or_timestamp_changed_fails() {
        let mut body = BODY.to_vec();
        body[5] ^= 0x20;
        let header = format!("t={TS},v1={V1}");
        assert_eq!(verify(KEY, &request(&header), &body), Err(mismatch()));
        let later = format!("t={},v1={V1}", TS + 1);
        assert_eq!(verify(KEY, &request(&later), BODY), Err(mismatch()));
    }

    #[test]
    fn any_v1_may_match_and_v0_or_unknown_schemes_do_not_count() {
        let rolled = format!("t={TS},v1={OTHER},v1={V1},v0={OTHER}");
        assert!(verify(KEY, &request(&rolled), BODY).is_ok());
        let upper = format!("t={TS},v1={}", V1.to_ascii_uppercase());
        assert!(verify(KEY, &request(&upper), BODY).is_ok());
        for header in [
            format!("t={TS},v0={V1}"),
            format!("t={TS},v2={V1}"),
            format!("t={TS},V1={V1}"),
            format!("t={TS},v1 ={V1}"),
            format!("t={TS}"),
            format!("t={TS},v1={OTHER}"),
        ] {
            assert_eq!(
                verify(KEY, &request(&header), BODY),
                Err(mismatch()),
                "{header}"
            );
        }
    }

    #[test]
    fn empty_truncated_and_overlong_signatures_fail() {
        for v1 in [
            "",
            &V1[..63],
            &V1[..62],
            &V1[..10],
            &format!("{V1}0"),
            &format!("{V1}00"),
        ] {
            let header = format!("t={TS},v1={v1}");
            assert_eq!(
                verify(KEY, &request(&header), BODY),
                Err(mismatch()),
                "{header}"
            );
        }
        assert!(matches!(
            verify(KEY, &request(""), BODY),
            Err(VerifyError::Malformed { .. })
        ));
    }

    #[test]
    fn the_timestamp_must_be_there_once_as_integer_seconds() {
        for header in [
            format!("v1={V1}"),
            String::new(),
            format!("t={TS},t={TS},v1={V1}"),
            format!("t=,v1={V1}"),
            format!("t=+{TS},v1={V1}"),
            format!("t={TS}.5,v1={V1}"),
            format!("t= {TS},v1={V1}"),
        ] {
            assert!(
                matches!(
                    verify(KEY, &request(&header), BODY),
                    Err(VerifyError::Malformed { .. })
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn too_many_signatures_are_refused() {
        let mut header = format!("t={TS}");
        for _ in 0..16 {
            header.push_str(&format!(",v1={OTHER}"));
        }
        assert!(verify(KEY, &request(&format!("{header},v1={V1}")), BODY).is_err());
        assert!(verify(KEY, &request(&format!("{header},v0={V1}")), BODY).is_err());
        let fifteen = format!("t={TS}{}", format!(",v1={OTHER}").repeat(15));
        assert!(verify(KEY, &request(&format!("{fifteen},v1={V1}")), BODY).is_ok());
    }

    #[test]
    fn the_header_must_be_there_once_in_ascii() {
        let good = request(&format!("t={TS},v1={V1}"));
        assert_eq!(
            verify(KEY, &without(good.clone(), SIGNATURE), BODY),
            Err(VerifyError::MissingHeader(SIGNATURE.to_owned()))
        );
        for broken in [
            repeated(good.clone(), SIGNATURE),
            non_ascii(good, SIGNATURE),
        ] {
            assert!(matches!(
                verify(KEY, &broken, BODY),
                Err(VerifyError::Malformed { .. })
            ));
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
            assert_eq!(
                verify(key, &request(&format!("t={TS},v1={V1}")), BODY),
                Err(err)
            );
        }
        assert_eq!(check_key(KEY), Ok(()));
    }

    #[test]
    fn errors_never_show_the_key_or_the_signature() {
        let good = format!("t={TS},v1={V1}");
        for err in [
            verify(b"whsec_wrong", &request(&good), BODY).unwrap_err(),
            verify(KEY, &request(&good), b"x").unwrap_err(),
            verify(KEY, &request(&format!("t=x,v1={V1}")), BODY).unwrap_err(),
            verify(KEY, &repeated(request(&good), SIGNATURE), BODY).unwrap_err(),
        ] {
            assert_quiet(
                &err,
                &[
                    "whsec_test_secret",
                    "test_secret",
                    V1,
                    &V1[..16],
                    "whsec_wrong",
                ],
            );
        }
    }
}
