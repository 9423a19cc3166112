//! Property tests of the scrubber: planted values in every encoding at every
//! split point, untouched text, overlapping and nested values.

#[path = "support/scrub_check.rs"]
mod scrub_check;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use narakim::redact::Scrubber;
use narakim::vault::SecretValue;
use proptest::prelude::*;
use scrub_check::{ALPHABET, check};

fn text_of(min: usize, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), min..max)
        .prop_map(|c| c.into_iter().collect())
}

fn value() -> impl Strategy<Value = String> {
    text_of(8, 40)
}

fn writes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..48, 1..6)
}

/// How a value is planted: each the way a real program would print it,
/// computed with other code than the scrubber's.
#[derive(Debug, Clone)]
enum Planting {
    Raw,
    Hex {
        upper: bool,
    },
    /// Inside a longer base64 stream: `before` and `after` bytes around the
    /// value set its alignment and make its edges mix with other bits.
    Base64 {
        url: bool,
        padded: bool,
        before: Vec<u8>,
        after: Vec<u8>,
    },
    /// `echo "$V" | base64`, as printed (wrapped at 76 columns).
    EchoBase64,
    Percent {
        upper: bool,
    },
    /// Inside a JSON document: serde_json's escaping, or ASCII-only escaping
    /// as Python's json.dumps does.
    Json {
        ascii_only: bool,
    },
    /// Percent-encoding of only some bytes, hex digits in any case: what a
    /// URL decoder still reads as the value. `%` itself is always encoded.
    SomePercent {
        choices: Vec<u8>,
    },
    /// Inside a JSON string with only some characters `\u`-escaped, hex in
    /// any case: what a JSON parser still reads as the value.
    SomeJson {
        choices: Vec<u8>,
    },
}

fn planting() -> impl Strategy<Value = Planting> {
    let bytes = |n| prop::collection::vec(any::<u8>(), 0..n);
    let choices = || prop::collection::vec(0u8..4, 1..24);
    prop_oneof![
        choices().prop_map(|choices| Planting::SomePercent { choices }),
        choices().prop_map(|choices| Planting::SomeJson { choices }),
        Just(Planting::Raw),
        any::<bool>().prop_map(|upper| Planting::Hex { upper }),
        (any::<bool>(), any::<bool>(), bytes(3), bytes(5)).prop_map(
            |(url, padded, before, after)| Planting::Base64 {
                url,
                padded,
                before,
                after
            }
        ),
        Just(Planting::EchoBase64),
        any::<bool>().prop_map(|upper| Planting::Percent { upper }),
        any::<bool>().prop_map(|ascii_only| Planting::Json { ascii_only }),
    ]
}

fn plant(value: &str, how: &Planting) -> String {
    match how {
        Planting::Raw => value.to_owned(),
        Planting::Hex { upper: false } => value.bytes().map(|b| format!("{b:02x}")).collect(),
        Planting::Hex { upper: true } => value.bytes().map(|b| format!("{b:02X}")).collect(),
        Planting::Base64 {
            url,
            padded,
            before,
            after,
        } => {
            let mut data = before.clone();
            data.extend_from_slice(value.as_bytes());
            data.extend_from_slice(after);
            match (url, padded) {
                (false, true) => STANDARD.encode(&data),
                (false, false) => STANDARD_NO_PAD.encode(&data),
                (true, true) => URL_SAFE.encode(&data),
                (true, false) => URL_SAFE_NO_PAD.encode(&data),
            }
        }
        Planting::EchoBase64 => {
            let encoded = STANDARD.encode(format!("{value}\n"));
            let lines: Vec<&str> = encoded
                .as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            lines.join("\n") + "\n"
        }
        Planting::Percent { upper } => value
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else if *upper {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                }
            })
            .collect(),
        Planting::SomePercent { choices } => {
            let hex = |n: u8, upper: bool| {
                let d = b"0123456789abcdef"[n as usize] as char;
                if upper { d.to_ascii_uppercase() } else { d }
            };
            let mut out = String::new();
            for (i, b) in value.bytes().enumerate() {
                let choice = choices[i % choices.len()];
                if choice == 0 && b != b'%' && b.is_ascii() {
                    out.push(b as char);
                } else {
                    out.push('%');
                    out.push(hex(b >> 4, choice & 1 == 1));
                    out.push(hex(b & 15, choice & 2 == 2));
                }
            }
            out
        }
        Planting::SomeJson { choices } => {
            let mut out = String::from("{\"token\": \"");
            for (i, c) in value.chars().enumerate() {
                let choice = choices[i % choices.len()];
                let must = matches!(c, '"' | '\\') || c.is_control();
                if choice == 0 && !must {
                    out.push(c);
                } else {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        let escaped = format!("\\u{u:04x}");
                        out.push_str(&if choice & 1 == 1 {
                            escaped.to_ascii_uppercase().replace("\\U", "\\u")
                        } else {
                            escaped
                        });
                    }
                }
            }
            out + "\"}"
        }
        Planting::Json { ascii_only: false } => serde_json::json!({ "token": value }).to_string(),
        Planting::Json { ascii_only: true } => {
            let mut out = String::from("{\"token\": \"");
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_ascii() => out.push(c),
                    c => {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{u:04x}"));
                        }
                    }
                }
            }
            out + "\"}"
        }
    }
}

/// The part of a planting that the value alone determines, computed here
/// without the scrubber's help: none of it may survive.
fn must_vanish(value: &str, how: &Planting) -> String {
    let planted = plant(value, how);
    match how {
        Planting::Base64 { before, .. } => {
            // Characters covering only the value's bits, at its alignment.
            let k = before.len();
            let first = (8 * k).div_ceil(6);
            let last = 8 * (k + value.len()) / 6;
            planted[first..last].to_owned()
        }
        Planting::EchoBase64 => planted.trim_end().to_owned(),
        Planting::Json { .. } | Planting::SomeJson { .. } => {
            let body = planted.strip_prefix("{\"token\":").unwrap_or(&planted);
            let body = body.trim_start().trim_start_matches('"');
            body.strip_suffix("\"}").unwrap_or(body).to_owned()
        }
        _ => planted,
    }
}

/// No 12-byte window of `secret_part` is left in `out`.
fn assert_gone(out: &[u8], secret_part: &str) {
    let part = secret_part.as_bytes();
    let width = part.len().min(12);
    for window in part.windows(width) {
        assert!(
            !out.windows(width).any(|w| w == window),
            "{:?} of {secret_part:?} survived in {:?}",
            String::from_utf8_lossy(window),
            String::from_utf8_lossy(out)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// No planted value survives, in any listed encoding, at any split point.
    #[test]
    fn planted_values_never_survive(
        secrets in prop::collection::vec(value(), 1..4),
        plantings in prop::collection::vec((0usize..4, planting(), text_of(0, 30)), 1..5),
        head in text_of(0, 30),
        writes in writes(),
    ) {
        // Filler never contains a character of the encodings' alphabets
        // beyond ALPHABET, so a surviving window can only be a leak.
        let mut text = head;
        for (which, how, filler) in &plantings {
            // A `%` or `\` just before would make another escape out of the
            // planting's first characters, as any decoder reads it: a space first.
            if matches!(how, Planting::SomePercent { .. } | Planting::SomeJson { .. }) {
                text.push(' ');
            }
            text.push_str(&plant(&secrets[which % secrets.len()], how));
            text.push_str(filler);
        }
        check(&secrets, text.as_bytes(), &writes);
        let names: Vec<String> = (0..secrets.len()).map(|i| format!("S{i}")).collect();
        let values: Vec<SecretValue> = secrets.iter().map(|v| SecretValue::new(v.clone()).unwrap()).collect();
        let out = Scrubber::new(names.iter().map(String::as_str).zip(&values)).scrub(text.as_bytes());
        for (which, how, _) in &plantings {
            assert_gone(&out, &must_vanish(&secrets[which % secrets.len()], how));
        }
    }

    /// Text without secrets passes through byte-identical, whatever the writes.
    #[test]
    fn clean_text_is_untouched(
        secrets in prop::collection::vec(value(), 1..4),
        text in text_of(0, 400),
        writes in writes(),
    ) {
        let forms: Vec<Vec<u8>> = secrets.iter().flat_map(|v| narakim::redact::forms_of(v)).collect();
        prop_assume!(!forms.iter().any(|f| text.as_bytes().windows(f.len()).any(|w| w == &f[..])));
        // check() asserts identity unless the text ends with a secret's start.
        check(&secrets, text.as_bytes(), &writes);
    }

    /// Overlapping (`abcd` + `cdef` in `abcdef`) and nested values leave
    /// nothing: exactly one replacement naming both.
    #[test]
    fn overlapping_and_nested_pairs_leave_nothing(
        joined in text_of(17, 40),
        i1 in any::<prop::sample::Index>(),
        i2 in any::<prop::sample::Index>(),
        nested in any::<bool>(),
        writes in writes(),
    ) {
        let chars: Vec<char> = joined.chars().collect();
        let n = chars.len();
        let (a, b): (String, String) = if nested {
            // B inside A.
            let start = i1.index(n - 8 + 1);
            let len = 8 + i2.index(n - start - 8 + 1);
            (joined.clone(), chars[start..start + len].iter().collect())
        } else {
            // A = joined[..a_end] and B = joined[b_start..], overlapping.
            let b_start = 1 + i1.index(n - 8);
            let a_min = (b_start + 1).max(8);
            let a_end = a_min + i2.index(n - a_min);
            (chars[..a_end].iter().collect(), chars[b_start..].iter().collect())
        };
        prop_assume!(a != b);
        let text = format!("<<{joined}>>");
        let values = [a.clone(), b.clone()];
        check(&values, text.as_bytes(), &writes);

        let secrets = [SecretValue::new(a).unwrap(), SecretValue::new(b).unwrap()];
        let scrubber = Scrubber::new([("S0", &secrets[0]), ("S1", &secrets[1])]);
        let out = scrubber.scrub_str(&text);
        prop_assert_eq!(out, "<<[REDACTED:S0,S1]>>");
    }
}

#[test]
fn a_value_split_at_every_point_of_every_encoding() {
    let value = "tok\"en/é+~ 9";
    let plantings = [
        Planting::Raw,
        Planting::Hex { upper: true },
        Planting::Base64 {
            url: true,
            padded: false,
            before: vec![1],
            after: vec![2, 3],
        },
        Planting::EchoBase64,
        Planting::Percent { upper: false },
        Planting::Json { ascii_only: true },
    ];
    for how in &plantings {
        let text = format!("log: {} end", plant(value, how));
        for first in 1..text.len() {
            check(&[value.to_owned()], text.as_bytes(), &[first, 1, 3]);
        }
        check(&[value.to_owned()], text.as_bytes(), &[1]);
        let secret = SecretValue::new(value.to_owned()).unwrap();
        assert_gone(
            &Scrubber::new([("S0", &secret)]).scrub(text.as_bytes()),
            &must_vanish(value, how),
        );
    }
}
