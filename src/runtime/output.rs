//! A node's output as the next node and every record see it: canonical
//! JSON (parsed and serialised again, so an escape such as `\u0041` is
//! undone before it is checked), safe to print, and holding no value of the
//! execution in any form.
//!
//! Most outputs need little: whitespace dropped, an object's keys put in
//! order. [`quick`] does that in one pass, with no tree built, and gives
//! up on any form it is not sure of (an escape serde_json would rewrite, a
//! fraction, a duplicate key); those take the full parse. It never gives a
//! text the full path would not.

use crate::redact::{Scrubber, is_unprintable};

/// Why an output cannot be passed on.
pub(crate) enum OutputProblem {
    TooLarge(usize),
    NotJson,
    /// Names of the secrets whose values it holds.
    HoldsSecret(String),
}

/// The canonical form of `output`, refused if it is larger than `limit`,
/// not JSON, or holds any value `scrubber` knows. A value is not redacted
/// but refused: a redaction the next node can see would tell it whether a
/// guess was right.
pub(crate) fn canonical(
    output: &str,
    limit: usize,
    scrubber: &Scrubber,
) -> Result<String, OutputProblem> {
    if output.len() > limit {
        return Err(OutputProblem::TooLarge(output.len()));
    }
    let canonical = match quick(output) {
        Some(canonical) => canonical,
        None => {
            let value: serde_json::Value =
                serde_json::from_str(output).map_err(|_| OutputProblem::NotJson)?;
            escape_unprintable(&value.to_string())
        }
    };
    // The canonical text holds every string decoded (so `\u0041` is `A`
    // there) and the structure, so a value spread across it shows too.
    let names = scrubber.names_in(canonical.as_bytes());
    if !names.is_empty() {
        return Err(OutputProblem::HoldsSecret(names.join(", ")));
    }
    Ok(canonical)
}

/// Serialised JSON with every character that could steer a terminal (DEL,
/// C1 controls, bidi controls, line separators; serde_json already escapes
/// C0) written as a `\uXXXX` escape: the same value, safe to print.
fn escape_unprintable(json: &str) -> String {
    if !json.chars().any(is_unprintable) {
        return json.to_owned();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_unprintable(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Deeper than this, the full parse decides (serde_json stops at 128).
const MAX_DEPTH: usize = 64;

/// What the full path (parse, serialise, [`escape_unprintable`]) gives for
/// `text`, if `text` keeps to the forms this pass is sure of: object keys
/// with no escapes and no duplicates; integers of at most 18 digits, with
/// no `-0`, fraction or exponent; in strings, only the escapes serde_json
/// writes itself (for `"`, `\`, `\n`, `\r`, `\t`, `\b` and `\f`) and no
/// character [`escape_unprintable`] would rewrite. `None` otherwise, or
/// if `text` is not JSON at all.
pub(crate) fn quick(text: &str) -> Option<String> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        at: 0,
        out: String::with_capacity(text.len()),
    };
    reader.value(0)?;
    reader.space();
    (reader.at == reader.bytes.len()).then_some(reader.out)
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    out: String,
}

/// One object member as written out: its key (as in the text, which has
/// no escapes, so as decoded) and where the member stands in the output.
struct Member<'a> {
    key: &'a [u8],
    span: std::ops::Range<usize>,
}

impl<'a> Reader<'a> {
    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.space();
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    /// Copies `text[from..self.at]` as it is.
    fn copy(&mut self, from: usize) {
        self.out.push_str(&self.text[from..self.at]);
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.bytes[self.at..].starts_with(word.as_bytes()).then(|| {
            self.at += word.len();
            self.out.push_str(word);
        })
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        self.space();
        match self.peek()? {
            b'{' if depth < MAX_DEPTH => self.object(depth + 1),
            b'[' if depth < MAX_DEPTH => self.array(depth + 1),
            b'"' => self.string(true).map(|_| ()),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        self.at += 1;
        let start = self.out.len();
        self.out.push('{');
        if self.eat(b'}').is_some() {
            self.out.push('}');
            return Some(());
        }
        let mut members: Vec<Member<'a>> = Vec::new();
        let mut sorted = true;
        loop {
            if !members.is_empty() {
                self.out.push(',');
            }
            self.space();
            let from = self.out.len();
            if self.peek()? != b'"' {
                return None;
            }
            // Compared as written, so keys must be written as they decode.
            let key = self.string(false)?;
            self.eat(b':')?;
            self.out.push(':');
            self.value(depth)?;
            if let Some(last) = members.last() {
                match last.key.cmp(key) {
                    std::cmp::Ordering::Less => {}
                    // A duplicate: the full path keeps the last.
                    std::cmp::Ordering::Equal => return None,
                    std::cmp::Ordering::Greater => sorted = false,
                }
            }
            members.push(Member {
                key,
                span: from..self.out.len(),
            });
            if self.eat(b'}').is_some() {
                break;
            }
            self.eat(b',')?;
        }
        if !sorted {
            members.sort_unstable_by(|a, b| a.key.cmp(b.key));
            if members.windows(2).any(|w| w[0].key == w[1].key) {
                return None;
            }
            let written = self.out.split_off(start + 1);
            for (i, member) in members.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let span = member.span.start - start - 1..member.span.end - start - 1;
                self.out.push_str(&written[span]);
            }
        }
        self.out.push('}');
        Some(())
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.at += 1;
        self.out.push('[');
        if self.eat(b']').is_some() {
            self.out.push(']');
            return Some(());
        }
        loop {
            self.value(depth)?;
            if self.eat(b']').is_some() {
                self.out.push(']');
                return Some(());
            }
            self.eat(b',')?;
            self.out.push(',');
        }
    }

    /// Copies a string written as serde_json writes it and holding
    /// nothing unprintable; gives its contents (between the quotes).
    fn string(&mut self, escapes: bool) -> Option<&'a [u8]> {
        let (bytes, from) = (self.bytes, self.at);
        self.at += 1;
        loop {
            let byte = *bytes.get(self.at)?;
            match byte {
                b'"' => {
                    self.at += 1;
                    self.copy(from);
                    return Some(&bytes[from + 1..self.at - 1]);
                }
                b'\\' if escapes => {
                    if !matches!(
                        bytes.get(self.at + 1),
                        Some(b'"' | b'\\' | b'n' | b'r' | b't' | b'b' | b'f')
                    ) {
                        return None;
                    }
                    self.at += 2;
                }
                0x00..0x20 | b'\\' | 0x7f => return None,
                0x20..0x80 => self.at += 1,
                _ => {
                    // A lead byte (every step moves by a whole character);
                    // C1 controls, bidi controls and line separators are
                    // rewritten by the full path.
                    let c = self.text[self.at..].chars().next()?;
                    if is_unprintable(c) {
                        return None;
                    }
                    self.at += c.len_utf8();
                }
            }
        }
    }

    fn integer(&mut self) -> Option<()> {
        let from = self.at;
        let negative = self.bytes[self.at] == b'-';
        if negative {
            self.at += 1;
        }
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        let well_formed = match &self.bytes[start..self.at] {
            [] => false,
            [b'0'] => !negative,
            [b'0', ..] => false,
            digits => digits.len() <= 18,
        };
        if !well_formed || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.copy(from);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the full path gives.
    fn slow(text: &str) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(escape_unprintable(&value.to_string()))
    }

    #[test]
    fn the_quick_pass_gives_what_the_full_path_gives_or_nothing() {
        for text in [
            r#"{"app_len":38,"input":{},"token_len":38}"#,
            r#"{"token_len":38,"app_len":38,"input":{"z":[1,2],"a":null}}"#,
            "{ \"b\" : [ 1 , -2 ] ,\n  \"a\":\t{} }\r\n",
            r#"[1,-2,0,"a\"b\\c\nd",true,false,null,{"":[]}]"#,
            r#""héllo ✓ 🎉""#,
            "123456789012345678",
            r#"{"é":1,"e":2,"z":3}"#,
        ] {
            let quick = quick(text);
            assert!(quick.is_some(), "{text}");
            assert_eq!(quick, slow(text), "{text}");
        }
        for text in [
            r#"{"a":1,"a":2}"#,       // a duplicate key, next to each other
            r#"{"a":1,"b":2,"a":3}"#, // and apart
            r#""\u0041""#,            // an escape serde_json undoes
            r#"{"\u0061":1}"#,        // an escaped key
            r#""a/b\/c""#,            // an escaped slash
            "1.0",                    // a fraction
            "1e3",                    // an exponent
            "-0",                     // negative zero
            "0123",                   // a leading zero
            "1234567890123456789012", // past 18 digits
            "\"\u{7f}\"",             // DEL
            "\"\u{202e}\"",           // a bidi control
            "\"\u{85}\"",             // a C1 control
            "\"a\tb\"",               // a raw tab in a string
            "{",
            "",
            "[1,]",
            "{}x",
            "{,}",
            r#"{"a"}"#,
            "tru",
        ] {
            assert_eq!(quick(text), None, "{text}");
        }
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(quick(&deep), None, "deep nesting is left to serde_json");
    }

    /// JSON values; with `floats`, numbers that have a fraction too.
    fn json(floats: bool) -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let float = if floats { 1 } else { 0 };
        let leaf = prop_oneof![
            1 => Just(Value::Null),
            1 => any::<bool>().prop_map(Value::Bool),
            1 => any::<i64>().prop_map(Value::from),
            1 => (0u64..1000).prop_map(Value::from),
            1 => any::<u64>().prop_map(Value::from),
            float => (-1e6f64..1e6).prop_map(Value::from),
            2 => "\\PC{0,8}".prop_map(Value::String),
            1 => any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-c\\PC]{0,3}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// `value` as an extension might write it: each object's members in
    /// an order `seed` picks, whitespace where `seed` says.
    fn written(value: &serde_json::Value, seed: &mut u64, out: &mut String) {
        use serde_json::Value;
        let mut roll = |n: u64| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*seed >> 33) % n
        };
        let ws = [" ", "\n  ", "", "", "\t"][roll(5) as usize];
        match value {
            Value::Object(map) => {
                let mut members: Vec<_> = map.iter().collect();
                let turn = roll(members.len().max(1) as u64) as usize;
                members.rotate_left(turn);
                if roll(2) == 0 {
                    members.reverse();
                }
                out.push('{');
                for (i, (key, member)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(ws);
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push_str(ws);
                    out.push(':');
                    written(member, seed, out);
                }
                out.push_str(ws);
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    written(item, seed, out);
                }
                out.push(']');
            }
            leaf => {
                out.push_str(ws);
                out.push_str(&leaf.to_string());
            }
        }
    }

    proptest! {
        /// Whatever the quick pass gives is what the full path gives.
        #[test]
        fn quick_agrees_with_the_full_path(value in json(true), mut seed in any::<u64>()) {
            let mut text = String::new();
            written(&value, &mut seed, &mut text);
            if let Some(quick) = quick(&text) {
                prop_assert_eq!(Some(quick), slow(&text));
            }
        }

        /// And it gives up only on the forms it leaves to the full path.
        #[test]
        fn quick_covers_what_it_claims(value in json(false), mut seed in any::<u64>()) {
            let mut text = String::new();
            written(&value, &mut seed, &mut text);
            let canonical = slow(&text).unwrap();
            let long_number = canonical
                .split(|c: char| !c.is_ascii_digit())
                .any(|digits| digits.len() > 18);
            if !canonical.contains('\\') && !long_number {
                prop_assert_eq!(quick(&text), Some(canonical));
            }
        }

        /// Arbitrary text: never a different answer from the full path.
        #[test]
        fn arbitrary_text_is_never_misread(text in "[\\[\\]{}\",:0-9a-z\\\\ \n-]{0,24}") {
            if let Some(quick) = quick(&text) {
                prop_assert_eq!(Some(quick), slow(&text));
            }
        }
    }
}
