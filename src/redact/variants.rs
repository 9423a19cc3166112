//! Every form a secret value commonly takes when it leaks: the byte strings
//! the scrubber looks for.
//!
//! For a value `v` of `n` bytes:
//! - raw `v`;
//! - hex, lower and upper case;
//! - base64, standard and URL-safe alphabets, at each of the three byte
//!   alignments `v` can have inside a longer encoded stream. At alignment `k`
//!   (that many bytes precede `v` in its 3-byte group) the characters fully
//!   determined by `v` are a fixed string, the *core*; it appears wherever
//!   `v` is encoded at that alignment, padded or not, mid-stream or at the
//!   end. Longer forms extend the core to the end of the stream (unpadded and
//!   `=`-padded), so a value at the end of an encoding leaves no tail;
//! - base64 of `v` followed by a newline (what `echo "$V" | base64` encodes),
//!   and both that and plain base64 wrapped at 76 columns as `base64` prints
//!   them;
//! - percent-encoding: RFC 3986 (unreserved kept) in upper and lower case,
//!   `encodeURI` style (reserved characters kept), form encoding (space as
//!   `+`), and every byte encoded;
//! - JSON string escaping: minimal (`\"`, `\\`, control characters), with
//!   `\/`, and ASCII-only (`\uXXXX` for non-ASCII, surrogate pairs above
//!   U+FFFF), with lower- and upper-case hex.
//!
//! Duplicates (for most tokens, JSON and percent forms equal the raw value)
//! are removed.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

/// Columns at which `base64` (coreutils) wraps its output.
const BASE64_WRAP: usize = 76;

/// All leak forms of `value`, deduplicated, in a stable order.
pub(crate) fn variants(value: &str) -> Vec<Vec<u8>> {
    let mut out = variants_with_repeats(value);
    let (_, first) = sort_and_mark_firsts(&out);
    retain_marked(&mut out, &first);
    out
}

/// All leak forms of `value`, some possibly repeated (the scrubber removes
/// repeats across all values at once).
pub(crate) fn variants_with_repeats(value: &str) -> Vec<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    out.push(bytes.to_vec());
    out.push(hex(bytes, b"0123456789abcdef"));
    out.push(hex(bytes, b"0123456789ABCDEF"));
    base64_forms(bytes, &mut out);
    percent_forms(bytes, &mut out);
    json_forms(value, &mut out);

    // Every form of a valid value (8 bytes or more) is at least 8 bytes.
    out.retain(|v| v.len() >= super::anchors::ANCHOR_LEN);
    out
}

/// Indices of `items` in byte order (ties by index), and for each item
/// whether it is the first occurrence of its bytes. Sorting indices rather
/// than hashing copies: no stray copy of a form is made, and for a few dozen
/// forms it is several times faster.
pub(crate) fn sort_and_mark_firsts<T: AsRef<[u8]>>(items: &[T]) -> (Vec<u32>, Vec<bool>) {
    let mut order: Vec<u32> = (0..items.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        items[a as usize]
            .as_ref()
            .cmp(items[b as usize].as_ref())
            .then(a.cmp(&b))
    });
    let mut first = vec![true; items.len()];
    for pair in order.windows(2) {
        if items[pair[0] as usize].as_ref() == items[pair[1] as usize].as_ref() {
            first[pair[1] as usize] = false;
        }
    }
    (order, first)
}

/// Keeps the items `keep` marks, in order, wiping the others.
pub(crate) fn retain_marked<T: zeroize::Zeroize>(items: &mut Vec<T>, keep: &[bool]) {
    let mut index = 0;
    items.retain_mut(|item| {
        index += 1;
        if !keep[index - 1] {
            item.zeroize();
        }
        keep[index - 1]
    });
}

// Buffers here are sized up front (no reallocation leaves a stray copy
// behind), and temporaries are zeroizing: the forms are as secret as the
// value.

fn hex(bytes: &[u8], digits: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.extend_from_slice(&[digits[(b >> 4) as usize], digits[(b & 15) as usize]]);
    }
    out
}

fn base64_forms(value: &[u8], out: &mut Vec<Vec<u8>>) {
    let n = value.len();
    for (padded, unpadded) in [(STANDARD, STANDARD_NO_PAD), (URL_SAFE, URL_SAFE_NO_PAD)] {
        for k in 0..3 {
            let mut data = Zeroizing::new(Vec::with_capacity(k + n));
            data.resize(k, 0);
            data.extend_from_slice(value);
            let bare = Zeroizing::new(unpadded.encode(&*data).into_bytes());
            let full = Zeroizing::new(padded.encode(&*data).into_bytes());
            // Characters [first, last) depend on `value`'s bits alone.
            let first = (8 * k).div_ceil(6);
            let last = 8 * (k + n) / 6;
            out.push(bare[first..last].to_vec());
            out.push(bare[first..].to_vec());
            out.push(full[first..].to_vec());
        }
        let with_newline = with_newline(value);
        out.push(padded.encode(&*with_newline).into_bytes());
        out.push(unpadded.encode(&*with_newline).into_bytes());
    }
    // `base64 FILE` and `echo "$V" | base64` wrap long output.
    let with_newline = with_newline(value);
    for data in [value, &with_newline[..]] {
        let encoded = Zeroizing::new(STANDARD.encode(data).into_bytes());
        if encoded.len() > BASE64_WRAP {
            out.push(encoded.chunks(BASE64_WRAP).collect::<Vec<_>>().join(&b'\n'));
        }
    }
}

fn with_newline(value: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() + 1));
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

fn percent_forms(value: &[u8], out: &mut Vec<Vec<u8>>) {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    let uri_kept = |b: u8| unreserved(b) || b";,/?:@&=+$#!*'()".contains(&b);
    let form_kept = |b: u8| b.is_ascii_alphanumeric() || b"*-._".contains(&b);
    out.push(percent(value, unreserved, true, false));
    out.push(percent(value, unreserved, false, false));
    out.push(percent(value, uri_kept, true, false));
    out.push(percent(value, form_kept, true, true));
    out.push(percent(value, |_| false, true, false));
    out.push(percent(value, |_| false, false, false));
}

fn percent(value: &[u8], kept: impl Fn(u8) -> bool, upper: bool, space_as_plus: bool) -> Vec<u8> {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if kept(b) {
            out.push(b);
        } else if space_as_plus && b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[b'%', digits[(b >> 4) as usize], digits[(b & 15) as usize]]);
        }
    }
    out
}

fn json_forms(value: &str, out: &mut Vec<Vec<u8>>) {
    for upper in [false, true] {
        for (slash, ascii_only) in [(false, false), (true, false), (false, true), (true, true)] {
            out.push(json_escape(value, slash, ascii_only, upper).into_bytes());
        }
    }
}

/// The body of a JSON string holding `value` (without the quotes).
fn json_escape(value: &str, escape_slash: bool, ascii_only: bool, upper: bool) -> String {
    use std::fmt::Write as _;
    // The longest escape is 12 bytes (a surrogate pair) for a 4-byte char.
    let mut out = String::with_capacity(value.len() * 6);
    let unicode = |out: &mut String, unit: u16| {
        if upper {
            let _ = write!(out, "\\u{unit:04X}");
        } else {
            let _ = write!(out, "\\u{unit:04x}");
        }
    };
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if escape_slash => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => unicode(&mut out, c as u16),
            c if ascii_only && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    unicode(&mut out, *unit);
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(forms: &[Vec<u8>], s: &str) -> bool {
        forms.iter().any(|f| f == s.as_bytes())
    }

    #[test]
    fn base64_cores_at_every_alignment() {
        let v = "secret-value!";
        let forms = variants(v);
        for prefix in ["", "a", "ab", "abc", "abcd"] {
            for (engine, name) in [(STANDARD, "std"), (URL_SAFE, "url")] {
                let encoded = engine.encode(format!("{prefix}{v}"));
                let encoded_mid = engine.encode(format!("{prefix}{v}tail-bytes"));
                assert!(
                    forms
                        .iter()
                        .any(|f| encoded.contains(&*String::from_utf8_lossy(f)) && f.len() >= 16),
                    "{name} prefix {prefix:?}: {encoded}"
                );
                assert!(
                    forms.iter().any(
                        |f| encoded_mid.contains(&*String::from_utf8_lossy(f)) && f.len() >= 16
                    ),
                    "{name} prefix {prefix:?} mid-stream: {encoded_mid}"
                );
            }
        }
        // At the end of a stream the padded form covers the whole tail.
        assert!(has(&forms, &STANDARD.encode(v)));
        assert!(has(&forms, &STANDARD_NO_PAD.encode(v)));
        assert!(has(&forms, &STANDARD.encode(format!("{v}\n"))));
    }

    #[test]
    fn wrapped_base64_for_long_values() {
        let v = "x".repeat(100);
        let wrapped: Vec<u8> = STANDARD
            .encode(format!("{v}\n"))
            .into_bytes()
            .chunks(76)
            .collect::<Vec<_>>()
            .join(&b'\n');
        assert!(variants(&v).contains(&wrapped));
    }

    #[test]
    fn hex_percent_json() {
        let v = "a/b \"c\"\\é\u{1F600}\n";
        let forms = variants(v);
        assert!(has(&forms, "612f62202263225cc3a9f09f98800a"));
        assert!(has(&forms, "612F62202263225CC3A9F09F98800A"));
        assert!(has(&forms, "a%2Fb%20%22c%22%5C%C3%A9%F0%9F%98%80%0A"));
        assert!(has(&forms, "a%2fb%20%22c%22%5c%c3%a9%f0%9f%98%80%0a"));
        assert!(
            has(&forms, "a/b+%22c%22%5C%C3%A9%F0%9F%98%80%0A")
                || has(&forms, "a%2Fb+%22c%22%5C%C3%A9%F0%9F%98%80%0A")
        );
        assert!(has(&forms, r#"a/b \"c\"\\é😀\n"#));
        assert!(has(&forms, r#"a\/b \"c\"\\é😀\n"#));
        assert!(has(&forms, r#"a/b \"c\"\\\u00e9\ud83d\ude00\n"#));
        assert!(has(&forms, r#"a/b \"c\"\\\u00E9\uD83D\uDE00\n"#));
        // serde_json agrees with the minimal form.
        let serde = serde_json::to_string(v).unwrap();
        assert!(has(&forms, &serde[1..serde.len() - 1]));
    }

    #[test]
    fn plain_tokens_have_few_distinct_forms() {
        let forms = variants("MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.abcdef");
        // raw, 2 hex, base64 (2 alphabets × 3 alignments × ≤3 + 2 newline forms), percent all-bytes ×2.
        assert!(forms.len() <= 30, "{}", forms.len());
        assert_eq!(forms[0], b"MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.abcdef");
    }
}
