//! Slack request signing: `X-Slack-Signature: v0=<hex>`, the HMAC-SHA256
//! of `v0:{timestamp}:{body}` keyed with the app's signing secret as
//! shown (the text, not hex-decoded), where the timestamp is
//! `X-Slack-Request-Timestamp`.
//!
//! `v0` is the only version Slack defines; any other is a mismatch.

use http::HeaderMap;

use super::{
    Signed, VerifyError, check_raw_secret, ct_eq, decode_hex, encode_hex, header, hmac_sha256,
    parse_timestamp, replay_key, signed_headers,
};

/// The signature header: `v0=` and 64 hex digits.
pub const SIGNATURE: &str = "X-Slack-Signature";
/// The signed timestamp header, integer unix seconds.
pub const TIMESTAMP: &str = "X-Slack-Request-Timestamp";

const PREFIX: &str = "v0=";

/// Checks the key: the app's signing secret, non-empty.
pub fn check_key(key: &[u8]) -> Result<(), VerifyError> {
    check_raw_secret(key)
}

/// Verifies a Slack request. The event id, when there is one, is in the
/// body, so [`Signed::delivery_id`] is None.
pub fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<Signed, VerifyError> {
    check_key(key)?;
    let signature = header(headers, SIGNATURE)?;
    let timestamp_text = header(headers, TIMESTAMP)?;
    let timestamp = parse_timestamp(TIMESTAMP, timestamp_text)?;
    let expected = hmac_sha256(key, &[b"v0:", timestamp_text.as_bytes(), b":", body])?;
    let given = signature
        .strip_prefix(PREFIX)
        .and_then(decode_hex)
        .filter(|given| ct_eq(given, &expected))
        .ok_or_else(|| VerifyError::Mismatch(SIGNATURE.to_owned()))?;
    Ok(Signed {
        timestamp: Some(timestamp),
        delivery_id: None,
        replay_key: replay_key(&given),
    })
}

/// For tests and stand-ins: the two headers Slack would send with `body`
/// at `timestamp`, signed with `key`.
pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> Result<HeaderMap, VerifyError> {
    check_key(key)?;
    let ts = timestamp.to_string();
    let mac = hmac_sha256(key, &[b"v0:", ts.as_bytes(), b":", body])?;
    signed_headers(vec![
        (SIGNATURE, format!("{PREFIX}{}", encode_hex(&mac))),
        (TIMESTAMP, ts),
    ])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_quiet, headers, non_ascii, repeated, with, without};
    use super::*;

    // Slack's docs, "Verifying requests from Slack": the worked example.
    const KEY: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TS: i64 = 1531420618;
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const EXPECTED: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn request(signature: &str) -> HeaderMap {
        headers(&[(SIGNATURE, signature), (TIMESTAMP, "1531420618")])
    }

    fn mismatch() -> VerifyError {
        VerifyError::Mismatch(SIGNATURE.to_owned())
    }

    #[test]
    fn the_published_vector_signs_and_verifies() {
        let signed = sign(KEY, TS, BODY).unwrap();
        assert_eq!(signed[SIGNATURE], EXPECTED);
        assert_eq!(signed[TIMESTAMP], "1531420618");
        let proof = verify(KEY, &request(EXPECTED), BODY).unwrap();
        assert_eq!(proof.timestamp, Some(TS));
        assert_eq!(proof.delivery_id, None);
        assert_eq!(
            proof.replay_key,
            replay_key(&decode_hex(&EXPECTED[3..]).unwrap())
        );
    }

    #[test]
    fn a_good_signature_passes_and_a_wrong_key_fails() {
        let signed = sign(b"secret", 1700000000, b"a=b").unwrap();
        assert!(verify(b"secret", &signed, b"a=b").is_ok());
        assert_eq!(verify(KEY, &signed, b"a=b"), Err(mismatch()));
    }

    #[test]
    fn a_body_or_timestamp_changed_fails() {
        let mut body = BODY.to_vec();
        body[0] ^= 1;
        assert_eq!(verify(KEY, &request(EXPECTED), &body), Err(mismatch()));
        let later = with(request(EXPECTED), TIMESTAMP, "1531420619");
        assert_eq!(verify(KEY, &later, BODY), Err(mismatch()));
    }

    #[test]
    fn empty_truncated_overlong_and_other_versions_fail() {
        let hex = &EXPECTED[3..];
        for signature in [
            "",
            "v0=",
            &EXPECTED[..EXPECTED.len() - 1],
            &EXPECTED[..EXPECTED.len() - 2],
            &format!("{EXPECTED}0"),
            &format!("{EXPECTED}00"),
            &format!("v1={hex}"),
            &format!("V0={hex}"),
            hex,
        ] {
            assert_eq!(
                verify(KEY, &request(signature), BODY),
                Err(mismatch()),
                "{signature:?}"
            );
        }
    }

    #[test]
    fn each_header_is_required_once_and_in_ascii() {
        for name in [SIGNATURE, TIMESTAMP] {
            assert_eq!(
                verify(KEY, &without(request(EXPECTED), name), BODY),
                Err(VerifyError::MissingHeader(name.to_owned()))
            );
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
        for ts in ["", "soon", "1531420618.0", "+1531420618"] {
            assert!(matches!(
                verify(KEY, &with(request(EXPECTED), TIMESTAMP, ts), BODY),
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
            assert_eq!(verify(key, &request(EXPECTED), BODY), Err(err));
        }
        assert_eq!(check_key(KEY), Ok(()));
    }

    #[test]
    fn errors_never_show_the_key_or_the_signature() {
        for err in [
            verify(b"wrong-secret", &request(EXPECTED), BODY).unwrap_err(),
            verify(KEY, &request(EXPECTED), b"x").unwrap_err(),
            verify(KEY, &repeated(request(EXPECTED), SIGNATURE), BODY).unwrap_err(),
        ] {
            assert_quiet(
                &err,
                &[
                    "8f742231b10e8888abcd99yyyzzz85a5",
                    "wrong-secret",
                    EXPECTED,
                    &EXPECTED[3..20],
                ],
            );
        }
    }
}
