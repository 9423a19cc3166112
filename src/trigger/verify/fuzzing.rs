//! The property the `verify_webhooks` fuzz target checks. It lives beside
//! the verifiers so that it compiles with them and also runs as a unit
//! test on pseudo-random inputs; the fuzz target only calls [`check`].
//!
//! [`check`] decodes its bytes, deterministically, into a scheme (each of
//! the six, Standard Webhooks both as `v1` and `v1a`, and an hmac recipe
//! drawn from a menu), a key, a timestamp, an id, arbitrary headers and a
//! body, and asserts:
//!
//! 1. `verify`, `check_key`, `validate` and `check_timestamp` never panic,
//!    whatever the key, headers, body or content template;
//! 2. a request made with the scheme's `sign` helper verifies, with the
//!    timestamp and delivery id it was signed with, and with the same
//!    replay key again and after an unsigned header is added or changed;
//! 3. it fails once any one byte of the signature header is flipped (bar
//!    a hex letter's case, as hex reads either case), any one byte of the
//!    decoded signature is flipped, the signature is cut short or
//!    extended, a body byte is flipped or appended, the signed timestamp
//!    moves by a second, or the key differs by one byte.
//!
//! A key the scheme refuses must be refused the same way by `check_key`,
//! `sign` and `verify`.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::hmac::{Algorithm, Encoding, HmacSpec, KeyEncoding};
use super::{
    Scheme, VerifyError, check_timestamp, decode_base64_signature, decode_hex, discord,
    encode_base64, encode_hex, github, hmac, slack, standard_webhooks, stripe,
};

/// The fuzzer's bytes, read one at a time; 0 once they run out.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        first
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + usize::from(self.byte()) % (hi - lo + 1)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn i64(&mut self) -> i64 {
        let mut bytes = [0; 8];
        bytes.iter_mut().for_each(|b| *b = self.byte());
        i64::from_le_bytes(bytes)
    }

    /// `lo..=hi` characters that any scheme takes in an id.
    fn id(&mut self, lo: usize, hi: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
        let n = self.range(lo, hi);
        (0..n)
            .map(|_| char::from(ALPHABET[usize::from(self.byte()) % ALPHABET.len()]))
            .collect()
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// The scheme under test and what its signed requests must carry.
struct Case {
    scheme: Scheme,
    /// The key `sign` takes (for Ed25519, the seed or `whsk_` key).
    sign_key: Vec<u8>,
    /// The key `verify` takes.
    verify_key: Vec<u8>,
    signature_header: String,
    /// The signature is hex after its prefix (else base64).
    hex: bool,
    /// A separate header that carries the signed timestamp.
    timestamp_header: Option<String>,
    signs_timestamp: bool,
    /// Whether the verifier reports the id it was signed with.
    reports_id: bool,
    /// A header whose value is the id but that the signature does not
    /// cover: changing it must keep the replay key.
    unsigned_id_header: Option<String>,
    /// A header the content signs through `{header:NAME}`.
    signed_extra: Option<String>,
}

const EXTRA: &str = "x-extra";
const SCHEMES: u8 = 7;

fn seed(raw: &[u8]) -> [u8; 32] {
    let mut seed = [0; 32];
    raw.iter().zip(&mut seed).for_each(|(r, s)| *s = *r);
    seed
}

/// A recipe from a menu that covers every option; `validate` passes.
fn menu_spec(input: &mut Input<'_>) -> HmacSpec {
    let a = input.byte();
    let b = input.byte();
    let (content, timestamped) = [
        ("{body}", false),
        ("{timestamp}.{body}", true),
        ("v0:{timestamp}:{body}", true),
        ("{header:x-extra}|{body}", false),
        ("{body}{timestamp}", true),
    ][usize::from(b) % 5];
    HmacSpec {
        header: ["x-signature", "X-Hub-Signature-256", "signature"][usize::from(a) % 3].to_owned(),
        algorithm: if a & 4 != 0 {
            Algorithm::Sha512
        } else {
            Algorithm::Sha256
        },
        encoding: if a & 8 != 0 {
            Encoding::Base64
        } else {
            Encoding::Hex
        },
        prefix: [None, Some("sha256="), Some("v1=")][usize::from(a >> 4) % 3].map(str::to_owned),
        content: content.to_owned(),
        timestamp_header: timestamped.then(|| "x-timestamp".to_owned()),
        delivery_header: (b & 0x80 != 0).then(|| "x-delivery".to_owned()),
        key_encoding: [KeyEncoding::Raw, KeyEncoding::Hex, KeyEncoding::Base64]
            [usize::from(b >> 3) % 3],
    }
}

/// A content template of random tokens, valid or not.
fn free_content(input: &mut Input<'_>) -> String {
    const TOKENS: &[&str] = &[
        "{body}",
        "{timestamp}",
        "{header:x-extra}",
        "{header:x-timestamp}",
        "{header:x-delivery}",
        "{",
        "}",
        ".",
        ":",
        "v0",
        "{bdy}",
        "{header:}",
        "{header:a b}",
        "é",
    ];
    let n = input.range(0, 6);
    (0..n)
        .map(|_| TOKENS[usize::from(input.byte()) % TOKENS.len()])
        .collect()
}

/// The case for `choice`, with keys built from `raw`.
fn case_for(choice: u8, spec: &HmacSpec, raw: &[u8]) -> Case {
    let plain = |scheme, sign_key: Vec<u8>, verify_key, signature: &str| Case {
        scheme,
        sign_key,
        verify_key,
        signature_header: signature.to_owned(),
        hex: true,
        timestamp_header: None,
        signs_timestamp: true,
        reports_id: false,
        unsigned_id_header: None,
        signed_extra: None,
    };
    match choice % SCHEMES {
        symmetric @ (0 | 1) => {
            let (sign_key, verify_key) = if symmetric == 0 {
                let key = format!("whsec_{}", encode_base64(raw)).into_bytes();
                (key.clone(), key)
            } else {
                let whsk = format!("whsk_{}", encode_base64(&seed(raw)));
                let whpk = standard_webhooks::public_key(whsk.as_bytes())
                    .expect("a whsk_ key of 32 bytes has a public key");
                (whsk.into_bytes(), whpk.into_bytes())
            };
            Case {
                hex: false,
                timestamp_header: Some(standard_webhooks::TIMESTAMP.to_owned()),
                reports_id: true,
                ..plain(
                    Scheme::StandardWebhooks,
                    sign_key,
                    verify_key,
                    standard_webhooks::SIGNATURE,
                )
            }
        }
        2 => Case {
            signs_timestamp: false,
            reports_id: true,
            unsigned_id_header: Some(github::DELIVERY.to_owned()),
            ..plain(
                Scheme::Github,
                raw.to_vec(),
                raw.to_vec(),
                github::SIGNATURE,
            )
        },
        3 => plain(
            Scheme::Stripe,
            raw.to_vec(),
            raw.to_vec(),
            stripe::SIGNATURE,
        ),
        4 => Case {
            timestamp_header: Some(slack::TIMESTAMP.to_owned()),
            ..plain(Scheme::Slack, raw.to_vec(), raw.to_vec(), slack::SIGNATURE)
        },
        5 => {
            let seed = seed(raw);
            Case {
                timestamp_header: Some(discord::TIMESTAMP.to_owned()),
                ..plain(
                    Scheme::Discord,
                    seed.to_vec(),
                    discord::public_key_hex(&seed).into_bytes(),
                    discord::SIGNATURE,
                )
            }
        }
        _ => {
            let key = match spec.key_encoding {
                KeyEncoding::Raw => raw.to_vec(),
                KeyEncoding::Hex => encode_hex(raw).into_bytes(),
                KeyEncoding::Base64 => encode_base64(raw).into_bytes(),
            };
            Case {
                hex: spec.encoding == Encoding::Hex,
                timestamp_header: spec.timestamp_header.clone(),
                signs_timestamp: spec.timestamp_header.is_some(),
                reports_id: spec.delivery_header.is_some(),
                unsigned_id_header: spec.delivery_header.clone(),
                signed_extra: spec
                    .content
                    .contains("{header:x-extra}")
                    .then(|| EXTRA.to_owned()),
                ..plain(Scheme::Hmac(spec.clone()), key.clone(), key, &spec.header)
            }
        }
    }
}

/// The scheme's `sign` helper, called as a test or stand-in would.
fn sign(
    case: &Case,
    timestamp: i64,
    id: &str,
    extra: &HeaderMap,
    body: &[u8],
) -> Result<HeaderMap, VerifyError> {
    let key = &case.sign_key;
    match &case.scheme {
        Scheme::StandardWebhooks => standard_webhooks::sign(key, id, timestamp, body),
        Scheme::Github => github::sign(key, Some(id), body),
        Scheme::Stripe => stripe::sign(key, timestamp, body),
        Scheme::Slack => slack::sign(key, timestamp, body),
        Scheme::Discord => discord::sign(&seed(key), timestamp, body),
        Scheme::Hmac(spec) => hmac::sign(spec, key, timestamp, Some(id), extra, body),
    }
}

/// Header names the scheme reads, for the arbitrary requests.
fn names(case: &Case) -> Vec<String> {
    let mut names = vec![case.signature_header.clone(), EXTRA.to_owned()];
    names.extend(case.timestamp_header.clone());
    names.extend(case.unsigned_id_header.clone());
    match case.scheme {
        Scheme::StandardWebhooks => names.push(standard_webhooks::ID.to_owned()),
        Scheme::Github => names.push("X-Hub-Signature".to_owned()),
        _ => {}
    }
    names
}

fn arbitrary_headers(input: &mut Input<'_>, names: &[String]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for _ in 0..input.range(0, 6) {
        let name = &names[usize::from(input.byte()) % names.len()];
        let n = input.range(0, 40);
        let value = input.bytes(n);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

fn replaced(headers: &HeaderMap, name: &str, value: &[u8]) -> Option<HeaderMap> {
    let mut headers = headers.clone();
    headers.insert(
        HeaderName::from_bytes(name.as_bytes()).ok()?,
        HeaderValue::from_bytes(value).ok()?,
    );
    Some(headers)
}

/// Where the encoded signature starts in the signature header's value.
fn signature_start(case: &Case, value: &str) -> usize {
    let after = |marker: &str| value.rfind(marker).map_or(0, |i| i + marker.len());
    match &case.scheme {
        Scheme::StandardWebhooks => after(","),
        Scheme::Github => after("sha256="),
        Scheme::Stripe => after("v1="),
        Scheme::Slack => after("v0="),
        Scheme::Discord => 0,
        Scheme::Hmac(spec) => spec.prefix.as_deref().map_or(0, str::len),
    }
}

/// Checks the properties above for one input. Panics when one fails.
pub fn check(data: &[u8]) {
    let mut input = Input(data);
    let choice = input.byte();
    let spec = menu_spec(&mut input);
    let raw_key = {
        let n = input.range(0, 48);
        input.bytes(n)
    };
    let case = case_for(choice, &spec, &raw_key);
    let timestamp = i64::from(input.u32());
    let id = input.id(1, 24);
    let at = usize::from(input.byte()) | usize::from(input.byte()) << 8;
    let xor = input.byte().max(1);
    let cut = input.range(1, 8);
    let append = [b'0', b'A'][usize::from(input.byte() & 1)];
    let free = HmacSpec {
        content: free_content(&mut input),
        timestamp_header: (input.byte() & 1 != 0).then(|| "x-timestamp".to_owned()),
        ..spec.clone()
    };
    let clock = (input.i64(), input.i64(), input.u32());
    let junk = arbitrary_headers(&mut input, &names(&case));
    let body = input.rest();

    // 1. Nothing panics on arbitrary input.
    let all = [
        Scheme::StandardWebhooks,
        Scheme::Github,
        Scheme::Stripe,
        Scheme::Slack,
        Scheme::Discord,
        Scheme::Hmac(spec.clone()),
        Scheme::Hmac(free.clone()),
    ];
    for scheme in &all {
        let _ = scheme.check_key(&raw_key);
        let _ = scheme.verify(&raw_key, &junk, body);
    }
    let _ = case.scheme.verify(&case.verify_key, &junk, body);
    let (ts, now, tolerance) = clock;
    let within = (i128::from(ts) - i128::from(now)).abs() <= i128::from(tolerance);
    assert_eq!(check_timestamp(ts, now, tolerance).is_ok(), within);
    // A recipe that validates signs and verifies; one that does not
    // verifies nothing.
    match free.validate() {
        Ok(()) => {
            if let Ok(signed) = hmac::sign(&free, &raw_key, timestamp, Some(&id), &junk, body) {
                assert!(
                    hmac::verify(&free, &raw_key, &signed, body).is_ok(),
                    "a request signed with a valid recipe verifies: {free:?}"
                );
            }
        }
        Err(_) => assert!(hmac::verify(&free, &raw_key, &junk, body).is_err()),
    }

    // A key the scheme refuses is refused alike everywhere.
    let mut extra = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&id) {
        extra.insert(EXTRA, value);
    }
    if let Err(refused) = case.scheme.check_key(&case.verify_key) {
        assert!(matches!(refused, VerifyError::BadKey(_)), "{refused:?}");
        assert_eq!(
            case.scheme.verify(&case.verify_key, &junk, body),
            Err(refused)
        );
        assert!(matches!(
            sign(&case, timestamp, &id, &extra, body),
            Err(VerifyError::BadKey(_))
        ));
        return;
    }

    // 2. A signed request verifies.
    let signed = sign(&case, timestamp, &id, &extra, body).expect("signing with a good key");
    let verify =
        |headers: &HeaderMap, body: &[u8]| case.scheme.verify(&case.verify_key, headers, body);
    let proof = verify(&signed, body).expect("a signed request verifies");
    let expected_ts = case.signs_timestamp.then_some(timestamp);
    assert_eq!(proof.timestamp, expected_ts);
    assert_eq!(
        proof.delivery_id.as_deref(),
        case.reports_id.then_some(id.as_str())
    );
    assert_eq!(verify(&signed, body).as_ref(), Ok(&proof));
    let noisy = replaced(&signed, "x-unsigned-noise", b"1").expect("a valid header");
    assert_eq!(
        verify(&noisy, body).map(|p| p.replay_key),
        Ok(proof.replay_key)
    );
    if let Some(name) = &case.unsigned_id_header {
        let moved = replaced(&signed, name, b"another-id").expect("a valid header");
        let replay = verify(&moved, body).expect("the id is not signed");
        assert_eq!(replay.replay_key, proof.replay_key);
    }

    // 3. Any change to what was signed fails.
    let must_fail = |headers: &HeaderMap, body: &[u8], what: &str| {
        if let Ok(passed) = verify(headers, body) {
            panic!(
                "{what} still verifies: {passed:?} for {}",
                case.scheme.name()
            );
        }
    };
    let value = signed
        .get(&case.signature_header)
        .expect("sign sets the signature header")
        .as_bytes()
        .to_vec();
    let mut flipped = value.clone();
    let i = at % flipped.len();
    flipped[i] ^= xor;
    let same_hex = case.hex && flipped.eq_ignore_ascii_case(&value);
    if !same_hex && let Some(headers) = replaced(&signed, &case.signature_header, &flipped) {
        must_fail(&headers, body, "a flipped signature header byte");
    }
    let short = &value[..value.len().saturating_sub(cut)];
    if let Some(headers) = replaced(&signed, &case.signature_header, short) {
        must_fail(&headers, body, "a truncated signature");
    }
    let long = [&value[..], &[append]].concat();
    if let Some(headers) = replaced(&signed, &case.signature_header, &long) {
        must_fail(&headers, body, "an extended signature");
    }
    let text = String::from_utf8(value.clone()).expect("sign writes ASCII");
    let start = signature_start(&case, &text);
    let (prefix, encoded) = text.split_at(start);
    let mut raw = if case.hex {
        decode_hex(encoded)
    } else {
        decode_base64_signature(encoded)
    }
    .expect("sign writes a signature that decodes");
    let j = at % raw.len();
    raw[j] ^= xor;
    let reencoded = if case.hex {
        encode_hex(&raw)
    } else {
        encode_base64(&raw)
    };
    let headers = replaced(
        &signed,
        &case.signature_header,
        format!("{prefix}{reencoded}").as_bytes(),
    )
    .expect("a re-encoded signature is a valid header");
    must_fail(&headers, body, "a flipped signature byte");
    if !body.is_empty() {
        let mut changed = body.to_vec();
        let k = at % changed.len();
        changed[k] ^= xor;
        must_fail(&signed, &changed, "a flipped body byte");
    }
    must_fail(&signed, &[body, &[xor]].concat(), "an appended body byte");
    let later = (timestamp + 1).to_string();
    if let Some(name) = &case.timestamp_header {
        let headers = replaced(&signed, name, later.as_bytes()).expect("a valid header");
        must_fail(&headers, body, "a moved timestamp");
    }
    if matches!(case.scheme, Scheme::Stripe) {
        let moved = text.replacen(&format!("t={timestamp},"), &format!("t={later},"), 1);
        let headers =
            replaced(&signed, &case.signature_header, moved.as_bytes()).expect("a valid header");
        must_fail(&headers, body, "a moved timestamp");
    }
    if let Some(name) = &case.signed_extra {
        let headers = replaced(&signed, name, format!("{id}x").as_bytes()).expect("a valid header");
        must_fail(&headers, body, "a changed signed header");
    }
    if !raw_key.is_empty() {
        let mut other = raw_key.clone();
        other[0] ^= xor;
        let wrong = case_for(choice, &spec, &other);
        if let Ok(passed) = case.scheme.verify(&wrong.verify_key, &signed, body) {
            panic!(
                "another key verifies: {passed:?} for {}",
                case.scheme.name()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64: the same inputs on every run.
    struct Xorshift(u64);

    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn the_fuzz_property_holds_for_pseudo_random_inputs() {
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        for round in 0..3500u32 {
            let len = usize::try_from(rng.next() % 320).unwrap();
            let mut data: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
            if let Some(first) = data.first_mut() {
                // Every scheme in turn.
                *first = u8::try_from(round % u32::from(SCHEMES)).unwrap();
            }
            check(&data);
        }
    }

    #[test]
    fn short_and_empty_inputs_hold_too() {
        check(&[]);
        for choice in 0..SCHEMES {
            check(&[choice]);
            check(&[choice, 0xff, 0xff, 0xff]);
        }
    }
}
