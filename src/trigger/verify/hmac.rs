//! A generic HMAC verifier, configured in the graph for senders that no
//! named scheme covers: which header carries the signature, how it is
//! encoded, and what content it signs.
//!
//! ```toml
//! verify = { scheme = "hmac", secret = "ZOOM_SECRET", header = "x-zm-signature",
//!            prefix = "v0=", content = "v0:{timestamp}:{body}",
//!            timestamp_header = "x-zm-request-timestamp" }
//! ```
//!
//! The signed content is a template: literal text with `{body}` (the raw
//! body bytes, exactly once), `{timestamp}` (the text of
//! `timestamp_header`) and `{header:NAME}` (the text of another header).
//! It is built from raw bytes, never re-encoded. A `{` always opens a
//! placeholder, so the template cannot hold a literal `{`. Whether the
//! pieces can be told apart (a separator between `{timestamp}` and
//! `{body}`) is the sender's design; the recipe only reproduces it.
//!
//! A timestamp header must be signed (`{timestamp}` in the content): an
//! unsigned one proves nothing, since a replay can carry a fresh one. The
//! delivery header need not be; like GitHub's, it is reported as given.

use http::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};
use sha2::{Sha256, Sha512};

use super::{
    Signed, VerifyError, check_raw_secret, ct_eq, decode_base64_key, decode_base64_signature,
    decode_hex, encode_base64, encode_hex, header, header_value, mac, malformed, optional_header,
    parse_timestamp, replay_key,
};

/// The recipe of a generic HMAC signature, as written in a graph.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HmacSpec {
    /// The header that carries the signature.
    pub header: String,
    /// The hash HMAC is built on.
    pub algorithm: Algorithm,
    /// How the signature is written in the header.
    pub encoding: Encoding,
    /// Text before the encoded signature, for example `sha256=`; compared
    /// exactly (case too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The signed content: literal text with `{body}`, `{timestamp}` and
    /// `{header:NAME}` placeholders.
    #[serde(default = "default_content")]
    pub content: String,
    /// The header that carries the signed timestamp (integer unix
    /// seconds); the content must then contain `{timestamp}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// A header that carries the delivery id (not necessarily signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_header: Option<String>,
    /// How the stored key is written.
    #[serde(default)]
    pub key_encoding: KeyEncoding,
}

fn default_content() -> String {
    "{body}".to_owned()
}

/// The hash HMAC is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// HMAC-SHA256: a 32-byte signature.
    Sha256,
    /// HMAC-SHA512: a 64-byte signature.
    Sha512,
}

/// How the signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Hex digits, either case.
    Hex,
    /// Standard base64 (`+`, `/`), canonical and padded.
    Base64,
}

/// How the stored key is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyEncoding {
    /// The stored text's bytes are the key, exactly.
    #[default]
    Raw,
    /// The stored text is hex of the key.
    Hex,
    /// The stored text is standard base64 of the key (padding optional).
    Base64,
}

/// One piece of the signed content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part<'a> {
    Literal(&'a str),
    Body,
    Timestamp,
    Header(&'a str),
}

/// The content template's pieces, or what is wrong with it.
fn parse_content(content: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = content;
    while let Some((literal, after)) = rest.split_once('{') {
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let Some((inner, after)) = after.split_once('}') else {
            return Err("content has a `{` that is never closed; placeholders are \
                 {body}, {timestamp} and {header:NAME}, and a literal `{` cannot be signed"
                .to_owned());
        };
        parts.push(placeholder(inner)?);
        rest = after;
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest));
    }
    Ok(parts)
}

/// The piece a `{inner}` placeholder stands for.
fn placeholder(inner: &str) -> Result<Part<'_>, String> {
    match inner {
        "body" => Ok(Part::Body),
        "timestamp" => Ok(Part::Timestamp),
        _ => match inner.strip_prefix("header:") {
            Some(name) if HeaderName::from_bytes(name.as_bytes()).is_ok() => Ok(Part::Header(name)),
            Some(name) => Err(format!(
                "content's {{header:{}}} does not name a valid HTTP header; \
                 use letters, digits and `-`, for example {{header:x-request-id}}",
                shown(name)
            )),
            None => Err(format!(
                "content has an unknown placeholder {{{}}}; use {{body}}, {{timestamp}} \
                 or {{header:NAME}}",
                shown(inner)
            )),
        },
    }
}

/// Config text for a message: printable ASCII and short, or elided.
fn shown(text: &str) -> &str {
    if text.len() <= 40 && text.bytes().all(|b| b.is_ascii_graphic()) {
        text
    } else {
        "…"
    }
}

fn valid_header_name(field: &str, name: &str) -> Result<(), String> {
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!(
            "{field} must be a valid HTTP header name (letters, digits and `-`, for example \"X-Signature\")"
        ));
    }
    Ok(())
}

impl HmacSpec {
    /// Everything wrong with the recipe, as one message saying how to fix
    /// it: the content must contain `{body}` exactly once, `{timestamp}`
    /// and `timestamp_header` go together, header names must be valid and
    /// placeholders known.
    pub fn validate(&self) -> Result<(), String> {
        valid_header_name("header", &self.header)?;
        for (field, name) in [
            ("timestamp_header", &self.timestamp_header),
            ("delivery_header", &self.delivery_header),
        ] {
            let Some(name) = name else { continue };
            valid_header_name(field, name)?;
            if name.eq_ignore_ascii_case(&self.header) {
                return Err(format!(
                    "{field} must differ from header, which carries the signature"
                ));
            }
        }
        if let Some(prefix) = &self.prefix
            && !prefix.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(
                "prefix must be visible ASCII, as header values are, for example \"sha256=\""
                    .to_owned(),
            );
        }
        let parts = parse_content(&self.content)?;
        let bodies = parts.iter().filter(|p| **p == Part::Body).count();
        if bodies != 1 {
            return Err(format!(
                "content must contain {{body}} exactly once (it has {bodies}), for example \"{{body}}\" or \"{{timestamp}}.{{body}}\""
            ));
        }
        let signs_timestamp = parts.contains(&Part::Timestamp);
        match (&self.timestamp_header, signs_timestamp) {
            (None, true) => {
                return Err("content uses {timestamp} but timestamp_header is not set; \
                     set it to the header that carries the signed timestamp"
                    .to_owned());
            }
            (Some(_), false) => {
                return Err(
                    "timestamp_header is set but content does not sign it, so a replay \
                     could carry a fresh one; add {timestamp} to content (for example \
                     \"{timestamp}.{body}\") or remove timestamp_header"
                        .to_owned(),
                );
            }
            _ => {}
        }
        for part in &parts {
            if let Part::Header(name) = part
                && name.eq_ignore_ascii_case(&self.header)
            {
                return Err(
                    "content cannot sign the signature header itself; name another header in {header:NAME}"
                        .to_owned(),
                );
            }
        }
        Ok(())
    }

    /// The parsed content, for verifying: a recipe that does not validate
    /// verifies nothing (deploy refuses it first; this keeps a hand-built
    /// one from being used).
    fn parts(&self) -> Result<Vec<Part<'_>>, VerifyError> {
        let refuse = || {
            malformed(
                &self.header,
                "the trigger's hmac recipe does not validate, so nothing can be verified with it",
            )
        };
        self.validate().map_err(|_| refuse())?;
        parse_content(&self.content).map_err(|_| refuse())
    }

    fn key(&self, key: &[u8]) -> Result<Vec<u8>, VerifyError> {
        let decoded = match self.key_encoding {
            KeyEncoding::Raw => {
                check_raw_secret(key)?;
                return Ok(key.to_vec());
            }
            KeyEncoding::Hex => std::str::from_utf8(key.trim_ascii())
                .ok()
                .and_then(decode_hex)
                .ok_or(VerifyError::BadKey(
                    "key_encoding is hex: expected an even number of hex digits",
                ))?,
            KeyEncoding::Base64 => decode_base64_key(key).ok_or(VerifyError::BadKey(
                "key_encoding is base64: expected standard base64 (A-Z, a-z, 0-9, + and /)",
            ))?,
        };
        if decoded.is_empty() {
            return Err(VerifyError::BadKey(
                "the key is empty; store the webhook's signing secret",
            ));
        }
        Ok(decoded)
    }

    fn mac(&self, key: &[u8], content: &[&[u8]]) -> Result<Vec<u8>, VerifyError> {
        match self.algorithm {
            Algorithm::Sha256 => mac::<::hmac::Hmac<Sha256>>(key, content),
            Algorithm::Sha512 => mac::<::hmac::Hmac<Sha512>>(key, content),
        }
    }
}

/// The signed content's pieces, read from `headers`.
fn content<'a>(
    parts: &[Part<'a>],
    headers: &'a HeaderMap,
    timestamp: Option<&'a str>,
    body: &'a [u8],
) -> Result<Vec<&'a [u8]>, VerifyError> {
    parts
        .iter()
        .map(|part| match *part {
            Part::Literal(text) => Ok(text.as_bytes()),
            Part::Body => Ok(body),
            // validate() guarantees a timestamp header when the content
            // signs one; an empty piece would only fail to match.
            Part::Timestamp => Ok(timestamp.unwrap_or_default().as_bytes()),
            Part::Header(name) => header(headers, name).map(str::as_bytes),
        })
        .collect()
}

/// Checks the key's format against the recipe's `key_encoding`.
pub fn check_key(spec: &HmacSpec, key: &[u8]) -> Result<(), VerifyError> {
    spec.key(key).map(drop)
}

/// Verifies a request against the recipe.
pub fn verify(
    spec: &HmacSpec,
    key: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Signed, VerifyError> {
    let parts = spec.parts()?;
    let key = spec.key(key)?;
    let signature = header(headers, &spec.header)?;
    let (timestamp, timestamp_text) = match &spec.timestamp_header {
        Some(name) => {
            let text = header(headers, name)?;
            (Some(parse_timestamp(name, text)?), Some(text))
        }
        None => (None, None),
    };
    let delivery_id = match &spec.delivery_header {
        Some(name) => optional_header(headers, name)?
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
        None => None,
    };
    let expected = spec.mac(&key, &content(&parts, headers, timestamp_text, body)?)?;
    let mismatch = || VerifyError::Mismatch(spec.header.clone());
    let encoded = match &spec.prefix {
        Some(prefix) => signature
            .strip_prefix(prefix.as_str())
            .ok_or_else(mismatch)?,
        None => signature,
    };
    let given = match spec.encoding {
        Encoding::Hex => decode_hex(encoded),
        Encoding::Base64 => decode_base64_signature(encoded),
    }
    .filter(|given| ct_eq(given, &expected))
    .ok_or_else(mismatch)?;
    Ok(Signed {
        timestamp,
        delivery_id,
        replay_key: replay_key(&given),
    })
}

/// For tests and stand-ins: `headers` (which must hold any header the
/// content names with `{header:NAME}`) plus the timestamp header (when the
/// recipe has one), the delivery header (when it has one and an id is
/// given) and the signature header, for `body` signed with `key`.
pub fn sign(
    spec: &HmacSpec,
    key: &[u8],
    timestamp: i64,
    delivery_id: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HeaderMap, VerifyError> {
    let parts = spec.parts()?;
    let secret = spec.key(key)?;
    let mut out = headers.clone();
    let timestamp_text = timestamp.to_string();
    if let Some(name) = &spec.timestamp_header {
        out.insert(name_of(name)?, header_value(name, &timestamp_text)?);
    }
    if let (Some(name), Some(id)) = (&spec.delivery_header, delivery_id) {
        out.insert(name_of(name)?, header_value(name, id)?);
    }
    let ts = spec
        .timestamp_header
        .as_ref()
        .map(|_| timestamp_text.as_str());
    let mac = spec.mac(&secret, &content(&parts, &out, ts, body)?)?;
    let encoded = match spec.encoding {
        Encoding::Hex => encode_hex(&mac),
        Encoding::Base64 => encode_base64(&mac),
    };
    let value = format!("{}{encoded}", spec.prefix.as_deref().unwrap_or(""));
    let value = header_value(&spec.header, &value)?;
    out.insert(name_of(&spec.header)?, value);
    Ok(out)
}

fn name_of(name: &str) -> Result<HeaderName, VerifyError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| malformed(name, "it is not a valid header name"))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_quiet, headers, non_ascii, repeated, with, without};
    use super::*;

    fn spec(json: serde_json::Value) -> HmacSpec {
        let spec: HmacSpec = serde_json::from_value(json).unwrap();
        spec.validate().unwrap();
        spec
    }

    /// GitHub's scheme written as a recipe.
    fn github_like() -> HmacSpec {
        spec(serde_json::json!({
            "header": "X-Hub-Signature-256", "algorithm": "sha256", "encoding": "hex",
            "prefix": "sha256=", "delivery_header": "X-GitHub-Delivery",
        }))
    }

    /// Slack's scheme written as a recipe.
    fn slack_like() -> HmacSpec {
        spec(serde_json::json!({
            "header": "X-Slack-Signature", "algorithm": "sha256", "encoding": "hex",
            "prefix": "v0=", "content": "v0:{timestamp}:{body}",
            "timestamp_header": "X-Slack-Request-Timestamp",
        }))
    }

    const GH_KEY: &[u8] = b"It's a Secret to Everybody";
    const GH_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn mismatch(name: &str) -> VerifyError {
        VerifyError::Mismatch(name.to_owned())
    }

    #[test]
    fn the_github_vector_verifies_as_a_recipe() {
        let request = headers(&[
            ("x-hub-signature-256", GH_SIG),
            ("x-github-delivery", "d-1"),
        ]);
        let proof = verify(&github_like(), GH_KEY, &request, b"Hello, World!").unwrap();
        assert_eq!(proof.timestamp, None);
        assert_eq!(proof.delivery_id.as_deref(), Some("d-1"));
        let signed = sign(
            &github_like(),
            GH_KEY,
            0,
            None,
            &HeaderMap::new(),
            b"Hello, World!",
        )
        .unwrap();
        assert_eq!(signed["x-hub-signature-256"], GH_SIG);
    }

    #[test]
    fn the_slack_vector_verifies_as_a_recipe() {
        let key = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let request = headers(&[
            (
                "X-Slack-Signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
            ("X-Slack-Request-Timestamp", "1531420618"),
        ]);
        let proof = verify(&slack_like(), key, &request, body).unwrap();
        assert_eq!(proof.timestamp, Some(1531420618));
        let later = with(request, "X-Slack-Request-Timestamp", "1531420619");
        assert_eq!(
            verify(&slack_like(), key, &later, body),
            Err(mismatch("X-Slack-Signature"))
        );
    }

    #[test]
    fn sha512_and_base64_match_an_independent_computation() {
        // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha512 -hmac k3y -binary | base64
        let spec = spec(serde_json::json!({
            "header": "x-sig", "algorithm": "sha512", "encoding": "base64",
            "content": "{timestamp}.{body}", "timestamp_header": "x-ts",
        }));
        let expected = "ZyvMHgKiO9Stqng5QQvyDjH7KPvurxav8YU6JLMU8BdcbT9NIuQ/bQvPSoz9MRnxZ+RWAOVr8J6DxbZsDUkgMQ==";
        let request = headers(&[("x-sig", expected), ("x-ts", "1700000000")]);
        let proof = verify(&spec, b"k3y", &request, br#"{"a":1}"#).unwrap();
        assert_eq!(proof.timestamp, Some(1700000000));
        let signed = sign(
            &spec,
            b"k3y",
            1700000000,
            None,
            &HeaderMap::new(),
            br#"{"a":1}"#,
        )
        .unwrap();
        assert_eq!(signed["x-sig"], expected);
    }

    #[test]
    fn hex_and_base64_keys_decode_first() {
        // "It's a Secret to Everybody" written as hex and as base64.
        let hex = encode_hex(GH_KEY);
        let b64 = encode_base64(GH_KEY);
        for (encoding, key) in [
            ("hex", hex.as_str()),
            ("base64", b64.as_str()),
            ("base64", b64.trim_end_matches('=')),
        ] {
            let mut recipe = github_like();
            recipe.key_encoding = serde_json::from_value(serde_json::json!(encoding)).unwrap();
            let request = headers(&[("x-hub-signature-256", GH_SIG)]);
            assert!(
                verify(&recipe, key.as_bytes(), &request, b"Hello, World!").is_ok(),
                "{encoding}"
            );
            assert_eq!(check_key(&recipe, key.as_bytes()), Ok(()));
        }
    }

    #[test]
    fn a_header_placeholder_is_signed() {
        let recipe = spec(serde_json::json!({
            "header": "x-sig", "algorithm": "sha256", "encoding": "hex",
            "content": "{header:x-account}|{body}",
        }));
        let extra = headers(&[("x-account", "acme")]);
        let signed = sign(&recipe, b"key", 0, None, &extra, b"{}").unwrap();
        assert!(verify(&recipe, b"key", &signed, b"{}").is_ok());
        assert_eq!(
            verify(
                &recipe,
                b"key",
                &with(signed.clone(), "x-account", "evil"),
                b"{}"
            ),
            Err(mismatch("x-sig"))
        );
        assert_eq!(
            verify(
                &recipe,
                b"key",
                &without(signed.clone(), "x-account"),
                b"{}"
            ),
            Err(VerifyError::MissingHeader("x-account".to_owned()))
        );
        assert!(matches!(
            verify(&recipe, b"key", &repeated(signed, "x-account"), b"{}"),
            Err(VerifyError::Malformed { .. })
        ));
        assert_eq!(
            sign(&recipe, b"key", 0, None, &HeaderMap::new(), b"{}"),
            Err(VerifyError::MissingHeader("x-account".to_owned()))
        );
    }

    #[test]
    fn a_good_signature_passes_and_wrong_keys_bodies_and_signatures_fail() {
        let recipe = slack_like();
        let signed = sign(
            &recipe,
            b"secret",
            1700000000,
            None,
            &HeaderMap::new(),
            b"a=b",
        )
        .unwrap();
        assert!(verify(&recipe, b"secret", &signed, b"a=b").is_ok());
        let sig = "X-Slack-Signature";
        assert_eq!(
            verify(&recipe, b"secreT", &signed, b"a=b"),
            Err(mismatch(sig))
        );
        assert_eq!(
            verify(&recipe, b"secret", &signed, b"a=c"),
            Err(mismatch(sig))
        );
        let good = signed[sig].to_str().unwrap().to_owned();
        for bad in [
            String::new(),
            "v0=".to_owned(),
            good[..good.len() - 1].to_owned(),
            good[..good.len() - 2].to_owned(),
            format!("{good}0"),
            format!("{good}00"),
            good.replacen("v0=", "v1=", 1),
            good[3..].to_owned(),
        ] {
            assert_eq!(
                verify(&recipe, b"secret", &with(signed.clone(), sig, &bad), b"a=b"),
                Err(mismatch(sig)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn base64_signatures_must_be_exact() {
        let recipe = spec(serde_json::json!({
            "header": "x-sig", "algorithm": "sha256", "encoding": "base64",
        }));
        let signed = sign(&recipe, b"key", 0, None, &HeaderMap::new(), b"{}").unwrap();
        let good = signed["x-sig"].to_str().unwrap().to_owned();
        assert!(good.ends_with('='));
        for bad in [
            good.trim_end_matches('=').to_owned(),
            format!("{good}="),
            good.to_ascii_lowercase(),
        ] {
            assert_eq!(
                verify(&recipe, b"key", &with(signed.clone(), "x-sig", &bad), b"{}"),
                Err(mismatch("x-sig"))
            );
        }
    }

    #[test]
    fn headers_must_be_there_once_and_in_ascii() {
        let recipe = spec(serde_json::json!({
            "header": "x-sig", "algorithm": "sha256", "encoding": "hex",
            "content": "{timestamp}.{body}", "timestamp_header": "x-ts", "delivery_header": "x-id",
        }));
        let signed = sign(
            &recipe,
            b"key",
            1700000000,
            Some("d-9"),
            &HeaderMap::new(),
            b"{}",
        )
        .unwrap();
        let proof = verify(&recipe, b"key", &signed, b"{}").unwrap();
        assert_eq!(proof.delivery_id.as_deref(), Some("d-9"));
        assert_eq!(proof.timestamp, Some(1700000000));
        for name in ["x-sig", "x-ts"] {
            assert_eq!(
                verify(&recipe, b"key", &without(signed.clone(), name), b"{}"),
                Err(VerifyError::MissingHeader(name.to_owned()))
            );
        }
        assert!(verify(&recipe, b"key", &without(signed.clone(), "x-id"), b"{}").is_ok());
        for name in ["x-sig", "x-ts", "x-id"] {
            for broken in [
                repeated(signed.clone(), name),
                non_ascii(signed.clone(), name),
            ] {
                match verify(&recipe, b"key", &broken, b"{}") {
                    Err(VerifyError::Malformed { header, .. }) => assert_eq!(header, name),
                    other => panic!("{name}: {other:?}"),
                }
            }
        }
        for ts in ["", "now", "1.5", "+1700000000"] {
            assert!(matches!(
                verify(&recipe, b"key", &with(signed.clone(), "x-ts", ts), b"{}"),
                Err(VerifyError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn keys_that_do_not_decode_are_reported() {
        let mut recipe = github_like();
        let request = headers(&[("x-hub-signature-256", GH_SIG)]);
        for (encoding, key) in [
            (KeyEncoding::Raw, &b""[..]),
            (
                KeyEncoding::Raw,
                b"whpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            (KeyEncoding::Hex, b"abc"),
            (KeyEncoding::Hex, b"zz"),
            (KeyEncoding::Hex, b""),
            (KeyEncoding::Base64, b"!!!!"),
            (KeyEncoding::Base64, b""),
        ] {
            recipe.key_encoding = encoding;
            let err = check_key(&recipe, key).unwrap_err();
            assert!(
                matches!(err, VerifyError::BadKey(_)),
                "{encoding:?} {key:?}"
            );
            assert_eq!(
                verify(&recipe, key, &request, b"Hello, World!"),
                Err(err.clone())
            );
            assert_quiet(&err, &[std::str::from_utf8(key).unwrap()]);
        }
    }

    #[test]
    fn errors_never_show_the_key_or_the_signature() {
        let request = headers(&[("x-hub-signature-256", GH_SIG)]);
        for err in [
            verify(&github_like(), b"wrong key!", &request, b"Hello, World!").unwrap_err(),
            verify(&github_like(), GH_KEY, &request, b"x").unwrap_err(),
            verify(
                &github_like(),
                GH_KEY,
                &repeated(request.clone(), "x-hub-signature-256"),
                b"x",
            )
            .unwrap_err(),
        ] {
            assert_quiet(
                &err,
                &["It's a Secret", "wrong key!", GH_SIG, &GH_SIG[7..30]],
            );
        }
    }

    #[test]
    fn the_spec_parses_with_defaults_and_refuses_unknown_fields() {
        let parsed: HmacSpec = serde_json::from_value(serde_json::json!({
            "header": "x-sig", "algorithm": "sha512", "encoding": "base64",
        }))
        .unwrap();
        assert_eq!(parsed.content, "{body}");
        assert_eq!(parsed.key_encoding, KeyEncoding::Raw);
        assert_eq!(parsed.prefix, None);
        assert!(parsed.validate().is_ok());
        assert!(
            serde_json::from_value::<HmacSpec>(serde_json::json!({
                "header": "x-sig", "algorithm": "sha256", "encoding": "hex", "secret": "oops",
            }))
            .is_err()
        );
        for (field, value) in [
            ("algorithm", "sha1"),
            ("encoding", "base32"),
            ("key_encoding", "utf16"),
        ] {
            let mut json =
                serde_json::json!({"header": "x-sig", "algorithm": "sha256", "encoding": "hex"});
            json[field] = serde_json::json!(value);
            assert!(serde_json::from_value::<HmacSpec>(json).is_err(), "{field}");
        }
        // Serialises back to what parses to the same.
        let round: HmacSpec =
            serde_json::from_value(serde_json::to_value(slack_like()).unwrap()).unwrap();
        assert_eq!(round, slack_like());
    }

    #[test]
    fn validate_says_how_to_fix_each_problem() {
        let base = serde_json::json!({"header": "x-sig", "algorithm": "sha256", "encoding": "hex"});
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("content", "{timestamp}")],
                "{body} exactly once (it has 0)",
            ),
            (
                &[("content", "{body}{body}")],
                "{body} exactly once (it has 2)",
            ),
            (
                &[("content", "{timestamp}.{body}")],
                "timestamp_header is not set",
            ),
            (&[("timestamp_header", "x-ts")], "content does not sign it"),
            (&[("content", "{bdy}")], "unknown placeholder {bdy}"),
            (&[("content", "{Body}")], "unknown placeholder {Body}"),
            (&[("content", "{body")], "never closed"),
            (&[("content", "x{body}{")], "never closed"),
            (
                &[("content", "{header:bad name}{body}")],
                "does not name a valid HTTP header",
            ),
            (
                &[("content", "{header:}{body}")],
                "does not name a valid HTTP header",
            ),
            (
                &[("content", "{header:X-Sig}{body}")],
                "cannot sign the signature header",
            ),
            (
                &[("header", "bad header")],
                "header must be a valid HTTP header name",
            ),
            (&[("header", "")], "header must be a valid HTTP header name"),
            (
                &[
                    ("timestamp_header", "x ts"),
                    ("content", "{timestamp}{body}"),
                ],
                "timestamp_header must be a valid",
            ),
            (
                &[("delivery_header", "x:id")],
                "delivery_header must be a valid",
            ),
            (
                &[("delivery_header", "X-SIG")],
                "delivery_header must differ from header",
            ),
            (&[("prefix", "sha256=\n")], "prefix must be visible ASCII"),
        ];
        for (fields, expected) in cases {
            let mut json = base.clone();
            for (field, value) in *fields {
                json[field] = serde_json::json!(value);
            }
            let recipe: HmacSpec = serde_json::from_value(json).unwrap();
            let problem = recipe.validate().unwrap_err();
            assert!(problem.contains(expected), "{fields:?}: {problem}");
            // And nothing verifies with it.
            let request = headers(&[("x-sig", "00")]);
            assert!(matches!(
                verify(&recipe, b"key", &request, b"{}"),
                Err(VerifyError::Malformed { .. })
            ));
        }
        let fine: HmacSpec = serde_json::from_value(serde_json::json!({
            "header": "x-sig", "algorithm": "sha256", "encoding": "hex",
            "content": "}{header:x-a}{timestamp}:{body}}", "timestamp_header": "x-ts",
        }))
        .unwrap();
        assert_eq!(fine.validate(), Ok(()));
    }

    #[test]
    fn the_content_is_the_raw_bytes() {
        // A body that is not UTF-8 is signed as it is.
        let recipe = spec(serde_json::json!({
            "header": "x-sig", "algorithm": "sha256", "encoding": "hex", "content": "é:{body}",
        }));
        let body = [0xff, 0x00, 0xfe];
        let signed = sign(&recipe, b"key", 0, None, &HeaderMap::new(), &body).unwrap();
        assert!(verify(&recipe, b"key", &signed, &body).is_ok());
        let expected = mac::<::hmac::Hmac<Sha256>>(b"key", &["é:".as_bytes(), &body]).unwrap();
        assert_eq!(signed["x-sig"], encode_hex(&expected));
    }
}
