//! The scrubber's contract as one executable check, shared by the property
//! tests (`tests/scrub_props.rs`) and the fuzz target (`fuzz/`).
//!
//! [`check`] takes secrets, a text and a list of write sizes, and asserts:
//! 1. streaming the text in those writes gives exactly what scrubbing it in
//!    one piece gives (no write boundary changes the result);
//! 2. no form of any secret (see `narakim::redact::forms_of`) is left in
//!    the output;
//! 3. if the text holds no form of any secret, in any case, as written or
//!    as a percent or JSON decoder reads it, and does not end with the
//!    start of one, the output is the text, byte for byte.
//!
//! Secret names are `S0`, `S1`, …, and values are drawn by the callers from
//! an alphabet without upper-case letters or `[`, `]`, `:`, `,`, so no form
//! of a value can occur inside a `[REDACTED:S0]` label.

use narakim::redact::{MIN_TRUNCATED_MATCH, Scrubber, forms_of};
use narakim::vault::SecretValue;

/// Characters secret values and filler text are drawn from: no upper case,
/// none of `[]:,`, and some that every encoding treats specially.
pub const ALPHABET: &[char] = &[
    'a', 'b', 'c', 'd', 'e', 'f', 'g', 'k', 'q', 'x', 'y', 'z', '0', '1', '7', '9', '-', '_', '.',
    '~', '+', '/', '=', '%', '"', '\\', ' ', '\n', '\t', 'é', '€', '😀',
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// `%XX` decoded (either case), everything else as is.
fn percent_decoded(text: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%'
            && let (Some(h), Some(l)) = (
                text.get(i + 1).and_then(|&b| hex(b)),
                text.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// JSON string escapes decoded, as a JSON parser reads them.
fn json_decoded(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let chars: Vec<char> = text.chars().collect();
    let unit = |at: usize| -> Option<u32> {
        (chars.get(at) == Some(&'\\') && chars.get(at + 1) == Some(&'u'))
            .then(|| chars.get(at + 2..at + 6))
            .flatten()
            .and_then(|d| u32::from_str_radix(&d.iter().collect::<String>(), 16).ok())
    };
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let simple = (chars[i] == '\\')
            .then(|| chars.get(i + 1))
            .flatten()
            .and_then(|c| match c {
                '"' | '\\' | '/' => Some(*c),
                'n' => Some('\n'),
                't' => Some('\t'),
                'r' => Some('\r'),
                'b' => Some('\u{8}'),
                'f' => Some('\u{c}'),
                _ => None,
            });
        if let Some(c) = simple {
            out.push(c);
            i += 2;
        } else if let Some(u) = unit(i) {
            match (u, unit(i + 6)) {
                (0xD800..=0xDBFF, Some(lo @ 0xDC00..=0xDFFF)) => {
                    out.extend(char::from_u32(
                        0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00),
                    ));
                    i += 12;
                }
                _ => {
                    out.push(char::from_u32(u).unwrap_or('\u{fffd}'));
                    i += 6;
                }
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out.into_bytes()
}

/// Whether `text` holds `form` as a receiver may read it: in any case, as
/// written, percent-decoded or JSON-decoded.
fn holds(text: &[u8], form: &[u8]) -> bool {
    let form = form.to_ascii_lowercase();
    [text.to_vec(), percent_decoded(text), json_decoded(text)]
        .iter()
        .any(|view| contains(&view.to_ascii_lowercase(), &form))
}

/// Whether `text` ends with at least MIN_TRUNCATED_MATCH bytes that begin a form.
fn ends_with_a_start(text: &[u8], forms: &[Vec<u8>]) -> bool {
    forms.iter().any(|f| {
        (MIN_TRUNCATED_MATCH..f.len().min(text.len() + 1)).any(|k| text.ends_with(&f[..k]))
    })
}

/// Runs the three checks; panics with a description on failure.
pub fn check(values: &[String], text: &[u8], writes: &[usize]) {
    let secrets: Vec<SecretValue> = values
        .iter()
        .map(|v| SecretValue::new(v.clone()).expect("callers make valid values"))
        .collect();
    let names: Vec<String> = (0..secrets.len()).map(|i| format!("S{i}")).collect();
    let scrubber = Scrubber::new(names.iter().map(String::as_str).zip(&secrets));

    let whole = scrubber.scrub(text);

    let mut streamed = Vec::new();
    let mut stream = scrubber.stream();
    let mut rest = text;
    let mut sizes = writes.iter().copied().filter(|&s| s > 0).cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
        stream.write(&rest[..n], &mut streamed);
        rest = &rest[n..];
    }
    stream.finish(&mut streamed);
    assert!(
        streamed == whole,
        "streaming in writes of {writes:?} differs from one piece:\n streamed: {:?}\n whole:    {:?}",
        String::from_utf8_lossy(&streamed),
        String::from_utf8_lossy(&whole)
    );

    let forms: Vec<Vec<u8>> = values.iter().flat_map(|v| forms_of(v)).collect();
    for form in &forms {
        assert!(
            !contains(&whole, form),
            "a form survived: {:?} in {:?}",
            String::from_utf8_lossy(form),
            String::from_utf8_lossy(&whole)
        );
    }

    if !forms.iter().any(|f| holds(text, f)) && !ends_with_a_start(text, &forms) {
        assert!(
            whole == text,
            "text without secrets changed:\n in:  {:?}\n out: {:?}",
            String::from_utf8_lossy(text),
            String::from_utf8_lossy(&whole)
        );
    }
}
