//! Fuzzes the streaming scrubber against its contract, the same check the
//! property tests run (`tests/support/scrub_check.rs`): streaming in any
//! writes equals scrubbing in one piece, no form of a secret survives, and
//! text without secrets is untouched.
//!
//! The input bytes decode, deterministically, into:
//! - 1 to 4 secret values, each 8 to 40 characters of `ALPHABET`;
//! - 1 to 6 write sizes, each 1 to 64 bytes;
//! - a text: the remaining bytes are ops, each a filler character or a
//!   secret planted raw, hex, base64 (at any alignment in a longer run),
//!   percent-encoded or JSON-escaped.
//!
//! Encodings are written here, independently of the scrubber's own code.

#![no_main]

#[path = "../../tests/support/scrub_check.rs"]
mod scrub_check;

use libfuzzer_sys::fuzz_target;
use scrub_check::ALPHABET;

/// The fuzzer's bytes, read one at a time; 0 once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        first
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.byte() as usize % (hi - lo + 1)
    }

    fn char(&mut self) -> char {
        ALPHABET[self.byte() as usize % ALPHABET.len()]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

fn hex(value: &str, upper: bool) -> String {
    value
        .bytes()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}

fn base64(data: &[u8], url: bool, padded: bool) -> String {
    let table: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let group = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | ((b as u32) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(table[((group >> (18 - 6 * i)) & 63) as usize] as char);
        }
        if padded {
            (chunk.len()..3).for_each(|_| out.push('='));
        }
    }
    out
}

/// RFC 3986: unreserved characters kept, every other byte `%XX`.
fn percent(value: &str, upper: bool) -> String {
    value
        .bytes()
        .map(|b| match b {
            b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => (b as char).to_string(),
            b if upper => format!("%{b:02X}"),
            b => format!("%{b:02x}"),
        })
        .collect()
}

/// A JSON string literal holding `value` (the ALPHABET's specials only).
fn json(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out + "\""
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let values: Vec<String> = (0..input.range(1, 4))
        .map(|_| (0..input.range(8, 40)).map(|_| input.char()).collect())
        .collect();
    let writes: Vec<usize> = (0..input.range(1, 6)).map(|_| input.range(1, 64)).collect();

    let mut text = String::new();
    while !input.0.is_empty() {
        let op = input.byte();
        if op < 128 {
            text.push(ALPHABET[op as usize % ALPHABET.len()]);
            continue;
        }
        let value = &values[input.byte() as usize % values.len()];
        let planted = match op % 7 {
            0 => value.clone(),
            1 => hex(value, false),
            2 => hex(value, true),
            3 => {
                let flags = input.byte();
                let before = input.bytes(flags as usize % 3);
                let after = input.bytes((flags as usize >> 2) % 5);
                let run = [&before[..], value.as_bytes(), &after[..]].concat();
                base64(&run, flags & 0x20 != 0, flags & 0x40 != 0)
            }
            4 => percent(value, false),
            5 => percent(value, true),
            _ => json(value),
        };
        text.push_str(&planted);
    }

    scrub_check::check(&values, text.as_bytes(), &writes);
});
