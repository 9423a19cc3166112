//! Text that is safe to put on a terminal or a page: guest-chosen text
//! (logs, stdout, errors, request records) must not forge lines, move the
//! cursor, set the window title, write the clipboard or reverse the
//! reading order.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` changes how surrounding text is shown rather than being
/// shown itself: C0 and C1 controls (newline and ESC included), DEL,
/// Unicode line and paragraph separators, and bidirectional controls.
pub fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
                | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every unsafe character written as an escape: `\n`, `\r`,
/// `\t`, `\x1b`, `\u{202e}`. Safe text is returned as it is.
///
/// ```
/// use narakim::redact::printable;
/// assert_eq!(printable("ok\n[egress] sent\x1b]0;x\x07"), "ok\\n[egress] sent\\x1b]0;x\\x07");
/// assert_eq!(printable("plain"), "plain");
/// ```
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unprintable) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unprintable(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unprintable(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The lines of a multi-line text (stdout, stderr), each made
/// [`printable`]: a guest's newlines start new lines, which the caller
/// prefixes, and nothing else it wrote can.
pub fn printable_lines(text: &str) -> impl Iterator<Item = Cow<'_, str>> {
    text.lines().map(printable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralises_every_kind_of_control() {
        let nasty = "a\u{1b}[2J\u{9b}31m\u{7f}\u{202e}b\u{2028}c\u{2066}\r";
        let shown = printable(nasty);
        assert!(!shown.chars().any(is_unprintable), "{shown}");
        assert_eq!(
            shown,
            "a\\x1b[2J\\x9b31m\\x7f\\u{202e}b\\u{2028}c\\u{2066}\\r"
        );
        let lines: Vec<_> = printable_lines("one\ntwo\x1b").collect();
        assert_eq!(lines, ["one", "two\\x1b"]);
    }
}
