//! What a receiver decodes: text with its percent-escapes and JSON string
//! escapes undone, so a value escaped in any mixture of ways (some bytes
//! only, upper- or lower-case hex, `\u0041` for `A`) is matched in its
//! decoded form.
//!
//! Every decoded byte remembers where in the original text the escape (or
//! plain byte) that produced it starts, so a match found in the decoded
//! view maps back to a span of the original text.

use zeroize::Zeroizing;

/// `text` with escapes decoded, and where each decoded byte came from.
pub(crate) struct Decoded {
    /// The decoded bytes, ASCII-lowercased (the scrubber matches folded).
    pub(crate) bytes: Zeroizing<Vec<u8>>,
    /// `origin[i]`: offset in the text where decoded byte `i` starts; one
    /// more entry at the end holds the offset just past the last one.
    origin: Vec<usize>,
    /// `(start, end)` of every escape sequence in the text, in order.
    pub(crate) escapes: Vec<(usize, usize)>,
    /// Where an escape that the end of the text cut short begins (`%4`,
    /// `\u00`, a lone `\`, a high surrogate awaiting its pair).
    pub(crate) incomplete: Option<usize>,
}

impl Decoded {
    /// The span of the original text that decoded bytes `start..end` came from.
    pub(crate) fn span(&self, start: usize, end: usize) -> (usize, usize) {
        (self.origin[start], self.origin[end])
    }

    /// Where decoded byte `i` starts in the text (`i` may be the length).
    pub(crate) fn origin(&self, i: usize) -> usize {
        self.origin[i]
    }

    /// How many decoded bytes come from text before `offset`.
    pub(crate) fn decoded_before(&self, offset: usize) -> usize {
        self.origin[..self.bytes.len()].partition_point(|&o| o < offset)
    }

    /// The start of the escape sequence containing `offset`, if `offset`
    /// falls strictly inside one; else `offset`.
    pub(crate) fn escape_start(&self, offset: usize) -> usize {
        let at = self.escapes.partition_point(|&(_, end)| end <= offset);
        match self.escapes.get(at) {
            Some(&(start, _)) if start < offset => start,
            _ => offset,
        }
    }
}

/// Which escapes a receiver undoes: a URL decoder reads `%XX`, a JSON
/// parser `\uXXXX` and friends. Decoded apart, since a text means one or
/// the other (`\/` is `/` to a JSON parser, and stays `\/` in a URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escapes {
    Percent,
    Json,
}

impl Escapes {
    pub(crate) const ALL: [Escapes; 2] = [Escapes::Percent, Escapes::Json];

    /// Whether `text` holds anything [`decode`] would change.
    pub(crate) fn in_text(self, text: &[u8]) -> bool {
        let marker = match self {
            Escapes::Percent => b'%',
            Escapes::Json => b'\\',
        };
        memchr::memchr(marker, text).is_some()
    }
}

fn hex_value(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

fn hex4(text: &[u8], at: usize) -> Option<u32> {
    let digits = text.get(at..at + 4)?;
    digits
        .iter()
        .try_fold(0u32, |acc, &b| Some(acc << 4 | hex_value(b)?))
}

/// Decodes percent-escapes (`%XX`, either case) or JSON string escapes
/// (`\" \\ \/ \b \f \n \r \t \uXXXX`, surrogate pairs joined). Anything
/// else, a malformed escape included, stays as it is.
pub(crate) fn decode(text: &[u8], kind: Escapes) -> Decoded {
    let mut bytes = Zeroizing::new(Vec::with_capacity(text.len()));
    let mut origin = Vec::with_capacity(text.len() + 1);
    let mut escapes = Vec::new();
    let mut incomplete = None;
    let mut i = 0;
    let push = |bytes: &mut Vec<u8>, origin: &mut Vec<usize>, b: u8, at: usize| {
        bytes.push(b.to_ascii_lowercase());
        origin.push(at);
    };
    while i < text.len() {
        let rest = &text[i..];
        match rest[0] {
            b'%' if kind == Escapes::Percent => {
                match (
                    rest.get(1).copied().and_then(hex_value),
                    rest.get(2).copied().and_then(hex_value),
                ) {
                    (Some(hi), Some(lo)) => {
                        push(&mut bytes, &mut origin, (hi << 4 | lo) as u8, i);
                        escapes.push((i, i + 3));
                        i += 3;
                        continue;
                    }
                    // `%` or `%4` at the very end: it may still become an escape.
                    (Some(_), None) if rest.len() == 2 => incomplete = incomplete.or(Some(i)),
                    (None, _) if rest.len() == 1 => incomplete = incomplete.or(Some(i)),
                    _ => {}
                }
            }
            b'\\' if kind == Escapes::Json => {
                let simple = match rest.get(1) {
                    Some(b'"') => Some(b'"'),
                    Some(b'\\') => Some(b'\\'),
                    Some(b'/') => Some(b'/'),
                    Some(b'b') => Some(0x08),
                    Some(b'f') => Some(0x0c),
                    Some(b'n') => Some(b'\n'),
                    Some(b'r') => Some(b'\r'),
                    Some(b't') => Some(b'\t'),
                    _ => None,
                };
                if let Some(b) = simple {
                    push(&mut bytes, &mut origin, b, i);
                    escapes.push((i, i + 2));
                    i += 2;
                    continue;
                }
                if rest.len() == 1 {
                    incomplete = incomplete.or(Some(i));
                } else if rest[1] == b'u' {
                    match unicode_escape(rest) {
                        Unicode::Char(c, len) => {
                            let mut buf = [0u8; 4];
                            for &b in c.encode_utf8(&mut buf).as_bytes() {
                                push(&mut bytes, &mut origin, b, i);
                            }
                            escapes.push((i, i + len));
                            i += len;
                            continue;
                        }
                        Unicode::Incomplete => incomplete = incomplete.or(Some(i)),
                        Unicode::Invalid => {}
                    }
                }
            }
            _ => {}
        }
        push(&mut bytes, &mut origin, rest[0], i);
        i += 1;
    }
    origin.push(text.len());
    Decoded {
        bytes,
        origin,
        escapes,
        incomplete,
    }
}

enum Unicode {
    /// The character and the length of its escape (6, or 12 for a pair).
    Char(char, usize),
    /// The text ends before the escape (or its pair) could be complete.
    Incomplete,
    Invalid,
}

/// `\uXXXX`, or a surrogate pair `\uD83D\uDE00`, at the start of `text`.
fn unicode_escape(text: &[u8]) -> Unicode {
    let Some(unit) = hex4(text, 2) else {
        let digits = &text[2..text.len().min(6)];
        return if text.len() < 6 && digits.iter().all(|&b| hex_value(b).is_some()) {
            Unicode::Incomplete
        } else {
            Unicode::Invalid
        };
    };
    match unit {
        0xD800..=0xDBFF => {
            let low = &text[6..];
            if low.len() < 12 - 6 {
                // The pair's second half may still arrive.
                let expected = b"\\u";
                let prefix_ok = low.iter().zip(expected).all(|(a, b)| a == b)
                    && low.iter().skip(2).all(|&b| hex_value(b).is_some());
                return if prefix_ok {
                    Unicode::Incomplete
                } else {
                    Unicode::Invalid
                };
            }
            match (low.starts_with(b"\\u"), hex4(text, 8)) {
                (true, Some(lo @ 0xDC00..=0xDFFF)) => {
                    let c = 0x10000 + ((unit - 0xD800) << 10) + (lo - 0xDC00);
                    char::from_u32(c).map_or(Unicode::Invalid, |c| Unicode::Char(c, 12))
                }
                _ => Unicode::Invalid,
            }
        }
        0xDC00..=0xDFFF => Unicode::Invalid,
        _ => char::from_u32(unit).map_or(Unicode::Invalid, |c| Unicode::Char(c, 6)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(text: &str) -> String {
        let once = |t: &[u8], e| decode(t, e).bytes.to_vec();
        let json = once(text.as_bytes(), Escapes::Json);
        String::from_utf8(once(&json, Escapes::Percent)).unwrap()
    }

    #[test]
    fn decodes_mixtures_and_maps_back() {
        assert_eq!(decoded("a%41%4a\\u0042\\U0043"), "aajb\\u0043");
        assert_eq!(decoded("x\\ud83d\\ude00y"), "x\u{1F600}y");
        assert_eq!(decoded("%zz\\q%"), "%zz\\q%");
        // Apart: a URL keeps `\/`, JSON keeps `%41`.
        assert_eq!(&*decode(b"\\/%41", Escapes::Percent).bytes, b"\\/a");
        assert_eq!(&*decode(b"\\/%41", Escapes::Json).bytes, b"/%41");
        let d = decode(b"ab%43d", Escapes::Percent);
        // Decoded "abcd": 'c' came from the escape at 2..5.
        assert_eq!(d.span(2, 3), (2, 5));
        assert_eq!(d.span(0, 4), (0, 6));
        assert_eq!(d.escape_start(3), 2);
        assert_eq!(d.escape_start(5), 5);
    }

    #[test]
    fn notices_escapes_cut_short() {
        for (text, escapes, at) in [
            ("ab%", Escapes::Percent, Some(2)),
            ("ab%4", Escapes::Percent, Some(2)),
            ("ab\\", Escapes::Json, Some(2)),
            ("ab\\u00", Escapes::Json, Some(2)),
            ("ab\\ud83d", Escapes::Json, Some(2)),
            ("ab\\ud83d\\u", Escapes::Json, Some(2)),
            ("ab%4g", Escapes::Percent, None),
            ("ab\\u00zz", Escapes::Json, None),
            ("ab%4", Escapes::Json, None),
        ] {
            assert_eq!(decode(text.as_bytes(), escapes).incomplete, at, "{text}");
        }
    }
}
