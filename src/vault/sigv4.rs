//! AWS Signature Version 4, header form, as pure functions.
//!
//! Only what the KMS client needs: one request, headers signed, payload
//! hashed. The time is an input (`amz_date`, `YYYYMMDD'T'HHMMSS'Z'`) so the
//! published AWS vectors can be checked byte for byte. Nothing here
//! percent-encodes: callers pass a canonical URI and an already-encoded
//! query string (the KMS JSON API always signs `POST /` with no query).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The only algorithm SigV4 header signing names.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What one signature covers. `headers` must include every header to be
/// signed (`host` and `x-amz-date` at least); names in any case.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub payload: &'a [u8],
}

/// Header values may hold a session token: show only their names.
impl std::fmt::Debug for SignedRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("query", &self.query)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Lower-case hex, the encoding SigV4 uses for every hash and signature.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Hex SHA-256: the hashed payload, and the hash of the canonical request.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// `CanonicalHeaders` (each `name:value\n`) and `SignedHeaders` (`a;b;c`):
/// names lower-cased, values trimmed with inner runs of spaces collapsed,
/// sorted by name.
pub fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut sorted: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            (name.trim().to_ascii_lowercase(), value)
        })
        .collect();
    sorted.sort();
    let canonical = sorted.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed = sorted
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (canonical, signed)
}

/// The canonical request, and the `SignedHeaders` list that goes with it.
/// The query's `name=value` pairs are sorted; they must already be
/// URI-encoded.
pub fn canonical_request(req: &SignedRequest<'_>) -> (String, String) {
    let mut params: Vec<&str> = req.query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort_unstable();
    let (headers, signed) = canonical_headers(req.headers);
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.uri,
        params.join("&"),
        headers,
        signed,
        sha256_hex(req.payload)
    );
    (canonical, signed)
}

/// `YYYYMMDD/region/service/aws4_request`.
pub fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// The string to sign: algorithm, time, scope, hash of the canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Zeroizing<[u8; 32]> {
    let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.as_bytes());
    let k_date = hmac_sha256(&k_secret, date.as_bytes());
    let k_region = hmac_sha256(&*k_date, region.as_bytes());
    let k_service = hmac_sha256(&*k_region, service.as_bytes());
    hmac_sha256(&*k_service, b"aws4_request")
}

/// Hex HMAC of the string to sign under the signing key.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex(&*hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// The `Authorization` header value for `req`, signed at `amz_date`.
pub fn authorization(
    access_key_id: &str,
    secret: &str,
    amz_date: &str,
    region: &str,
    service: &str,
    req: &SignedRequest<'_>,
) -> String {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let scope = credential_scope(date, region, service);
    let (canonical, signed) = canonical_request(req);
    let key = signing_key(secret, date, region, service);
    let sig = signature(&key, &string_to_sign(amz_date, &scope, &canonical));
    format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed}, Signature={sig}"
    )
}

/// Formats a UTC time the way `x-amz-date` wants it.
pub fn amz_date(t: time::OffsetDateTime) -> Result<String, time::error::Format> {
    t.to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn signing_key_matches_aws_docs() {
        let key = signing_key(SECRET, "20150830", "us-east-1", "iam");
        assert_eq!(
            hex(&*key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn iam_list_users_example_matches_aws_docs() {
        let headers = [
            ("Host", "iam.amazonaws.com"),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("X-Amz-Date", "20150830T123600Z"),
        ];
        let req = SignedRequest {
            method: "GET",
            uri: "/",
            query: "Version=2010-05-08&Action=ListUsers",
            headers: &headers,
            payload: b"",
        };
        let (canonical, signed) = canonical_request(&req);
        assert_eq!(
            canonical,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
             content-type:application/x-www-form-urlencoded; charset=utf-8\n\
             host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             content-type;host;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed, "content-type;host;x-amz-date");
        let scope = credential_scope("20150830", "us-east-1", "iam");
        // The hash of the canonical request as printed in the docs' Task 2.
        assert!(
            string_to_sign("20150830T123600Z", &scope, &canonical)
                .ends_with("\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59")
        );
        assert_eq!(
            authorization(
                "AKIDEXAMPLE",
                SECRET,
                "20150830T123600Z",
                "us-east-1",
                "iam",
                &req
            ),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let (canonical, signed) = canonical_headers(&[("X-B", "  a   b  "), ("x-a", "1")]);
        assert_eq!(canonical, "x-a:1\nx-b:a b\n");
        assert_eq!(signed, "x-a;x-b");
    }

    #[test]
    fn amz_date_format() {
        let t = time::macros::datetime!(2015-08-30 12:36:00 +02:00);
        assert_eq!(amz_date(t).expect("formats"), "20150830T103600Z");
    }
}
