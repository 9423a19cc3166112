//! The streaming scrubber: no secret value leaves an execution, raw or in
//! any common encoding.
//!
//! A [`Scrubber`] is built once per execution from the values that execution
//! revealed. Each output stream (stdout, stderr, log lines, the returned
//! output) gets its own [`ScrubStream`], which replaces every occurrence of
//! every value, in every form listed in [`variants`], with
//! `[REDACTED:NAME]`.
//!
//! What it guarantees, and how:
//! - **Any write boundary.** A value split across writes, down to one byte
//!   per write, is caught: a stream holds back the longest tail of what it
//!   has seen that is still the beginning of some form of some value, and
//!   nothing more. Text that cannot be the start of a secret is released at
//!   once.
//! - **Overlapping and nested values.** All matches are found, at every
//!   position (not leftmost-first), and overlapping ones are merged into one
//!   replacement that names every value involved, so no tail escapes (the
//!   gap in maskers that replace one value at a time).
//! - **End of stream, trap, timeout.** [`ScrubStream::finish`] scrubs what is
//!   held back before releasing it. A held-back tail of at least
//!   [`MIN_TRUNCATED_MATCH`] bytes that is the start of a value (a secret cut
//!   off mid-print) is redacted too: half a token is still a secret.
//!
//! ```
//! use narakim::redact::Scrubber;
//! use narakim::vault::SecretValue;
//!
//! let token = SecretValue::new("sk-or-v1-abcdef0123456789".to_string()).unwrap();
//! let scrubber = Scrubber::new([("OPENROUTER_API_KEY", &token)]);
//! let mut stream = scrubber.stream();
//! let mut out = Vec::new();
//! // The value arrives in three writes, the middle one hex-free base64 of nothing.
//! stream.write(b"key=sk-or-v1-abc", &mut out);
//! stream.write(b"def0123", &mut out);
//! stream.write(b"456789 done\n", &mut out);
//! stream.finish(&mut out);
//! assert_eq!(out, b"key=[REDACTED:OPENROUTER_API_KEY] done\n");
//! ```
//!
//! # What stays in memory
//!
//! The scrubber owns the plaintext of every value (as its patterns), the
//! anchors and 4-gram filter derived from them, and the bytes a stream holds
//! back; all live in zeroizing buffers wiped on drop. No dependency holds a
//! copy: matching is our own code ([`anchors`]), and the standard library's
//! sort only moves pattern ids. Output buffers belong to the caller and only
//! ever hold scrubbed text.

mod anchors;
pub(crate) mod decode;
mod printable;
mod variants;

pub use printable::{is_unprintable, printable, printable_lines};

use std::io;
use std::sync::Arc;

use zeroize::Zeroizing;

use anchors::AnchorIndex;

use crate::vault::{ResolveError, SecretSnapshot, SecretValue};

/// Every form of `value` the scrubber looks for (see [`variants`]). Public
/// for tests and benchmarks that need to plant or count them.
pub fn forms_of(value: &str) -> Vec<Vec<u8>> {
    variants::variants(value)
}

/// A tail held back at end of stream is redacted when it is at least this
/// long and is the beginning of some form of a value.
pub const MIN_TRUNCATED_MATCH: usize = 6;

/// Matches every form of a set of secret values. Build it once per
/// execution; share it (it is `Send + Sync`) and open one [`ScrubStream`]
/// per output stream.
pub struct Scrubber {
    /// Secret index → name.
    names: Vec<String>,
    /// Pattern id → bytes (a form of one value).
    patterns: Vec<Zeroizing<Vec<u8>>>,
    /// Pattern id → secret index.
    owner: Vec<u32>,
    /// Pattern ids in byte order, to answer "is this the start of a pattern?".
    sorted: Vec<u32>,
    /// Bytes that begin some pattern.
    starts: [bool; 256],
    longest: usize,
    /// Finds where a pattern may start (see [`anchors`]).
    index: AnchorIndex,
    /// Anchor id → pattern ids that begin with that anchor.
    anchored: Vec<Vec<u32>>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field("names", &self.names)
            .field("patterns", &self.patterns.len())
            .finish_non_exhaustive()
    }
}

impl Scrubber {
    /// A scrubber for `secrets` (name, value). The name appears in the
    /// replacement; the value never appears anywhere.
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a SecretValue)>) -> Arc<Self> {
        let mut names = Vec::new();
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut owner = Vec::new();
        for (name, value) in secrets {
            let index = names.len() as u32;
            names.push(name.to_owned());
            for mut form in variants::variants_with_repeats(value.expose()) {
                // Matching is ASCII case-insensitive: a receiver reads hex,
                // percent-escapes and header names in either case.
                form.make_ascii_lowercase();
                owner.push(index);
                patterns.push(Zeroizing::new(form));
            }
        }
        // The same bytes twice (within a value, or under two names): the
        // first keeps them. `sorted` is then renumbered to the kept ids.
        let (order, first) = variants::sort_and_mark_firsts(&patterns);
        let mut renumbered = Vec::with_capacity(first.len());
        let mut next = 0u32;
        for &kept in &first {
            renumbered.push(next);
            next += kept as u32;
        }
        let sorted: Vec<u32> = order
            .into_iter()
            .filter(|&id| first[id as usize])
            .map(|id| renumbered[id as usize])
            .collect();
        variants::retain_marked(&mut owner, &first);
        variants::retain_marked(&mut patterns, &first);
        let mut starts = [false; 256];
        for p in &patterns {
            starts[p[0] as usize] = true;
        }
        let longest = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
        let mut by_anchor: Vec<(u64, u32)> = (0..patterns.len() as u32)
            .map(|id| (anchors::anchor_of(&patterns[id as usize]), id))
            .collect();
        by_anchor.sort_unstable();
        let mut anchor_list: Vec<u64> = Vec::new();
        let mut anchored: Vec<Vec<u32>> = Vec::new();
        for (anchor, id) in by_anchor {
            if anchor_list.last() != Some(&anchor) {
                anchor_list.push(anchor);
                anchored.push(Vec::new());
            }
            anchored.last_mut().expect("pushed above").push(id);
        }
        let index = AnchorIndex::new(anchor_list);
        Arc::new(Scrubber {
            names,
            patterns,
            owner,
            sorted,
            starts,
            longest,
            index,
            anchored,
        })
    }

    /// A scrubber for every value a snapshot holds
    /// ([`SecretSnapshot::all_values`]): a bot's own secrets and all its
    /// team's, including team secrets the bot overrides, or a team's. For
    /// scrubbing text from outside an execution, and an execution's records.
    /// Fails closed: if one value cannot be decrypted, there is no scrubber.
    pub fn for_snapshot(snapshot: &SecretSnapshot) -> Result<Arc<Self>, ResolveError> {
        let secrets = snapshot.all_values()?;
        Ok(Self::new(
            secrets.iter().map(|(name, value)| (name.as_str(), value)),
        ))
    }

    /// A scrubber that changes nothing (an execution that revealed nothing).
    pub fn empty() -> Arc<Self> {
        Self::new(std::iter::empty())
    }

    /// A new stream with its own state.
    pub fn stream(self: &Arc<Self>) -> ScrubStream {
        ScrubStream {
            scrubber: Arc::clone(self),
            pending: Zeroizing::new(Vec::new()),
        }
    }

    /// Scrubs a complete text (an error message, a returned output).
    pub fn scrub(self: &Arc<Self>, text: &[u8]) -> Vec<u8> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(text.len());
        let mut stream = self.stream();
        stream.write(text, &mut out);
        stream.finish(&mut out);
        out
    }

    /// Scrubs a complete string. Matches fall on character boundaries, so
    /// the result is valid UTF-8.
    pub fn scrub_str(self: &Arc<Self>, text: &str) -> String {
        String::from_utf8(self.scrub(text.as_bytes()))
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Scrubs a whole text that was not cut short: only whole matches are
    /// replaced, never a tail that merely begins a value (which would say
    /// whether a guess was a prefix).
    pub fn scrub_complete(self: &Arc<Self>, text: &str) -> String {
        let mut out = Vec::with_capacity(text.len());
        self.release(text.as_bytes(), End::Complete, &mut out);
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// A JSON value with every value scrubbed out of it, as a receiver
    /// parsing it would see: keys and strings are scrubbed, a number that
    /// is a value becomes the replacement string, and if a value still
    /// shows in the serialised result (one spread over JSON structure,
    /// such as `ab":"cd`), the whole value is replaced.
    pub fn scrub_json(self: &Arc<Self>, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        fn walk(s: &Arc<Scrubber>, value: &Value) -> Value {
            match value {
                Value::String(text) => Value::String(s.scrub_complete(text)),
                Value::Number(n) => {
                    let text = n.to_string();
                    if s.names_in(text.as_bytes()).is_empty() {
                        value.clone()
                    } else {
                        Value::String(s.scrub_complete(&text))
                    }
                }
                Value::Array(items) => Value::Array(items.iter().map(|v| walk(s, v)).collect()),
                Value::Object(map) => Value::Object(
                    map.iter()
                        .map(|(k, v)| (s.scrub_complete(k), walk(s, v)))
                        .collect(),
                ),
                other => other.clone(),
            }
        }
        let scrubbed = walk(self, value);
        let left = self.names_in(scrubbed.to_string().as_bytes());
        if left.is_empty() {
            scrubbed
        } else {
            let mut label = Vec::new();
            let owners: Vec<u32> = left
                .iter()
                .filter_map(|n| self.names.iter().position(|m| m == n))
                .map(|i| i as u32)
                .collect();
            self.write_label(&owners, &mut label);
            Value::String(String::from_utf8_lossy(&label).into_owned())
        }
    }

    /// Names of the secrets whose values occur in `data`, in any form,
    /// sorted: how an outbound request is checked before it leaves (a value
    /// may go only to the hosts it is bound to).
    pub fn names_in(&self, data: &[u8]) -> Vec<&str> {
        if self.patterns.is_empty() {
            return Vec::new();
        }
        let mut owners: Vec<u32> = self
            .spans_decoded(data, RECEIVER_DECODES)
            .into_iter()
            .flat_map(|span| span.owners)
            .collect();
        owners.sort_unstable();
        owners.dedup();
        owners
            .into_iter()
            .map(|o| self.names[o as usize].as_str())
            .collect()
    }

    /// Every match in `text` as written and in what decoding it `levels`
    /// times yields (a receiver that unescapes percent-encoding inside a
    /// JSON string, say), mapped back onto `text`, merged.
    fn spans_decoded(&self, text: &[u8], levels: usize) -> Vec<Span> {
        let folded = fold(text);
        let mut spans = self.merged_spans(&folded);
        // Every sequence of decoders up to `levels` long, each view's
        // offsets mapped back onto `text`.
        let mut views: Vec<(Zeroizing<Vec<u8>>, Vec<usize>)> = Vec::new();
        let mut frontier: Vec<Option<usize>> = vec![None];
        for _ in 0..levels {
            let mut next = Vec::new();
            for &parent in &frontier {
                for escapes in decode::Escapes::ALL {
                    let current: &[u8] = parent.map_or(text, |p| &views[p].0);
                    if !escapes.in_text(current) {
                        continue;
                    }
                    let decoded = decode::decode(current, escapes);
                    let origin: Vec<usize> = (0..=decoded.bytes.len())
                        .map(|i| {
                            let at = decoded.origin(i);
                            parent.map_or(at, |p| views[p].1[at])
                        })
                        .collect();
                    for span in self.merged_spans(&decoded.bytes) {
                        spans.push(Span::new(origin[span.start], origin[span.end], span.owners));
                    }
                    views.push((Zeroizing::new(decoded.bytes.to_vec()), origin));
                    next.push(Some(views.len() - 1));
                }
            }
            frontier = next;
        }
        merge(spans)
    }

    /// Names of the secrets this scrubber hides.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of byte patterns (all forms of all values).
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Heap bytes this scrubber owns: patterns, indexes and the automaton.
    pub fn heap_bytes(&self) -> usize {
        self.patterns
            .iter()
            .map(|p| p.capacity() + 24)
            .sum::<usize>()
            + self.owner.capacity() * 4
            + self.sorted.capacity() * 4
            + self
                .anchored
                .iter()
                .map(|a| a.capacity() * 4 + 24)
                .sum::<usize>()
            + self.names.iter().map(|n| n.capacity() + 24).sum::<usize>()
            + self.index.heap_bytes()
    }

    /// Smallest `q` such that `text[q..]` is a proper prefix of a pattern:
    /// where a match could still begin once more bytes arrive.
    fn holdback_start(&self, text: &[u8]) -> usize {
        let from = text.len().saturating_sub(self.longest.saturating_sub(1));
        (from..text.len())
            .find(|&q| self.starts[text[q] as usize] && self.prefixes(&text[q..]).next().is_some())
            .unwrap_or(text.len())
    }

    /// Patterns that `partial` is a proper prefix of.
    fn prefixes<'s>(&'s self, partial: &'s [u8]) -> impl Iterator<Item = u32> + 's {
        let at = self
            .sorted
            .partition_point(|&id| self.patterns[id as usize].as_slice() < partial);
        self.sorted[at..]
            .iter()
            .copied()
            .take_while(move |&id| self.patterns[id as usize].starts_with(partial))
            .filter(move |&id| self.patterns[id as usize].len() > partial.len())
    }

    /// Writes the scrubbed form of `text[..boundary]` to `out` and returns
    /// `boundary`: everything before it is final. With `at_end`, everything
    /// is final.
    fn release(&self, text: &[u8], end: End, out: &mut Vec<u8>) -> usize {
        let at_end = end != End::No;
        if self.patterns.is_empty() {
            out.extend_from_slice(text);
            return text.len();
        }
        let folded = fold(text);
        let mut spans = self.merged_spans(&folded);
        let mut hold = self.holdback_start(&folded);
        // What a receiver decodes: matches there map back onto the text,
        // and a tail that could still become (or complete) an escape of a
        // value is held back like a raw prefix.
        let decoded: Vec<decode::Decoded> = decode::Escapes::ALL
            .into_iter()
            .filter(|e| e.in_text(text))
            .map(|e| decode::decode(text, e))
            .collect();
        for d in &decoded {
            for span in self.merged_spans(&d.bytes) {
                let (start, end) = d.span(span.start, span.end);
                spans.push(Span::new(start, end, span.owners));
            }
            if !at_end {
                // An escape the text ends in the middle of may continue
                // what precedes it: the decoded view is complete only up
                // to there, and its tail up to there may begin a value.
                let complete = d
                    .incomplete
                    .map_or(d.bytes.len(), |at| d.decoded_before(at));
                hold = hold.min(d.origin(self.holdback_start(&d.bytes[..complete])));
                if let Some(at) = d.incomplete {
                    hold = hold.min(at);
                }
            }
        }
        if !decoded.is_empty() {
            spans = merge(spans);
        }
        let boundary = if at_end {
            if end == End::Truncated && text.len() - hold >= MIN_TRUNCATED_MATCH {
                // The cut-off start of a secret, merged with any span that
                // reaches into it.
                let mut owners: Vec<u32> = self
                    .prefixes(&folded[hold..])
                    .map(|id| self.owner[id as usize])
                    .collect();
                let mut start = hold;
                if let Some(first) = spans.iter().position(|s| s.end > hold) {
                    start = start.min(spans[first].start);
                    owners.extend(spans.drain(first..).flat_map(|s| s.owners));
                }
                spans.push(Span::new(start, text.len(), owners));
            }
            text.len()
        } else {
            // A span reaching into the held-back tail may still grow, and
            // an escape cut in two would decode differently: move back
            // until neither straddles the boundary.
            let mut boundary = hold;
            loop {
                let mut next = spans
                    .iter()
                    .find(|s| s.end > boundary)
                    .map_or(boundary, |s| s.start.min(boundary));
                for d in &decoded {
                    next = d.escape_start(next);
                }
                if next == boundary {
                    break boundary;
                }
                boundary = next;
            }
        };
        let mut cursor = 0;
        for span in spans.iter().take_while(|s| s.end <= boundary) {
            out.extend_from_slice(&text[cursor..span.start]);
            self.write_label(&span.owners, out);
            cursor = span.end;
        }
        out.extend_from_slice(&text[cursor..boundary]);
        boundary
    }

    /// Every match of every pattern, overlapping ones merged, in order.
    fn merged_spans(&self, text: &[u8]) -> Vec<Span> {
        let mut matches: Vec<(usize, usize, u32)> = Vec::new();
        self.index.for_each(text, |start, anchor| {
            let rest = &text[start..];
            for &id in &self.anchored[anchor] {
                let pattern = self.patterns[id as usize].as_slice();
                if rest.starts_with(pattern) {
                    matches.push((start, start + pattern.len(), self.owner[id as usize]));
                }
            }
        });
        // Starts arrive in order; sort ends too so spans merge correctly.
        matches.sort_unstable();
        let mut spans: Vec<Span> = Vec::new();
        for (start, end, who) in matches {
            push_span(&mut spans, Span::new(start, end, vec![who]));
        }
        spans
    }

    fn write_label(&self, owners: &[u32], out: &mut Vec<u8>) {
        out.extend_from_slice(b"[REDACTED:");
        for (i, &o) in owners.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.names[o as usize].as_bytes());
        }
        out.push(b']');
    }
}

/// A run of text to replace, and the secrets it belongs to (sorted, unique).
#[derive(Debug)]
struct Span {
    start: usize,
    end: usize,
    owners: Vec<u32>,
}

impl Span {
    fn new(start: usize, end: usize, mut owners: Vec<u32>) -> Self {
        owners.sort_unstable();
        owners.dedup();
        Span { start, end, owners }
    }
}

/// How much of a text has arrived when it is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// More may follow: hold back what could still become a match.
    No,
    /// The stream ended, perhaps cut short (a capture limit, a trap): a
    /// tail that begins a value is redacted too.
    Truncated,
    /// A whole value (a trigger field, an output): only whole matches
    /// count, so whether a text begins a value is never shown.
    Complete,
}

/// `text` with ASCII letters lowercased, in a buffer that is wiped.
fn fold(text: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut folded = Zeroizing::new(text.to_vec());
    folded.make_ascii_lowercase();
    folded
}

/// Levels of escaping a receiver may undo: percent-escapes inside a JSON
/// string, say. Checks of outbound data decode this many times.
const RECEIVER_DECODES: usize = 2;

/// Spans in any order, sorted and merged.
fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_unstable_by_key(|s| (s.start, s.end));
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        push_span(&mut merged, span);
    }
    merged
}

/// Appends `span`, merging it into the last one when they overlap.
fn push_span(spans: &mut Vec<Span>, span: Span) {
    match spans.last_mut() {
        Some(last) if span.start < last.end => {
            last.end = last.end.max(span.end);
            last.owners.extend(span.owners);
            last.owners.sort_unstable();
            last.owners.dedup();
        }
        _ => spans.push(span),
    }
}

/// One output stream's state: the bytes held back because a secret could
/// still be completing across the next write.
pub struct ScrubStream {
    scrubber: Arc<Scrubber>,
    pending: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ScrubStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrubStream")
            .field("held_back", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl ScrubStream {
    /// Scrubs `input` and appends what is final to `out`.
    pub fn write(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.pending.is_empty() {
            let done = self.scrubber.release(input, End::No, out);
            self.pending.extend_from_slice(&input[done..]);
        } else {
            self.pending.extend_from_slice(input);
            let done = self.scrubber.release(&self.pending, End::No, out);
            self.pending.drain(..done);
        }
    }

    /// Ends the stream (normally, or because of a trap or timeout): scrubs
    /// and releases everything held back.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.flush_into(out);
    }

    /// Like [`finish`](Self::finish), leaving the stream usable (for a
    /// stream that is cut short but may be reused, such as a log buffer).
    pub fn flush_into(&mut self, out: &mut Vec<u8>) {
        self.scrubber.release(&self.pending, End::Truncated, out);
        zeroize::Zeroize::zeroize(&mut *self.pending);
    }

    /// Bytes currently held back.
    pub fn held_back(&self) -> usize {
        self.pending.len()
    }
}

/// An [`io::Write`] that scrubs everything written through it into `inner`.
/// Call [`ScrubWriter::finish`] at the end: until then the tail that could
/// be the start of a secret is held back.
#[derive(Debug)]
pub struct ScrubWriter<W: io::Write> {
    stream: ScrubStream,
    inner: W,
    buf: Vec<u8>,
}

impl<W: io::Write> ScrubWriter<W> {
    pub fn new(scrubber: &Arc<Scrubber>, inner: W) -> Self {
        ScrubWriter {
            stream: scrubber.stream(),
            inner,
            buf: Vec::new(),
        }
    }

    /// Releases what is held back (scrubbed), flushes and returns the inner
    /// writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.buf.clear();
        self.stream.flush_into(&mut self.buf);
        self.inner.write_all(&self.buf)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: io::Write> io::Write for ScrubWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.clear();
        self.stream.write(data, &mut self.buf);
        self.inner.write_all(&self.buf)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(v: &str) -> SecretValue {
        SecretValue::new(v.to_owned()).unwrap()
    }

    fn scrub_in_pieces(scrubber: &Arc<Scrubber>, text: &[u8], piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut stream = scrubber.stream();
        for chunk in text.chunks(piece.max(1)) {
            stream.write(chunk, &mut out);
        }
        stream.finish(&mut out);
        out
    }

    #[test]
    fn raw_and_split() {
        let v = secret("hunter2-hunter2");
        let s = Scrubber::new([("PASSWORD", &v)]);
        let text = b"login with hunter2-hunter2 now";
        for piece in 1..=text.len() {
            assert_eq!(
                scrub_in_pieces(&s, text, piece),
                b"login with [REDACTED:PASSWORD] now",
                "piece {piece}"
            );
        }
    }

    #[test]
    fn holds_back_only_a_possible_start() {
        let v = secret("abcdefgh");
        let s = Scrubber::new([("K", &v)]);
        let mut stream = s.stream();
        let mut out = Vec::new();
        stream.write(b"xyz abc", &mut out);
        assert_eq!(out, b"xyz ");
        assert_eq!(stream.held_back(), 3);
        stream.write(b"x", &mut out);
        assert_eq!(out, b"xyz abcx");
        assert_eq!(stream.held_back(), 0);
    }

    #[test]
    fn overlapping_and_nested_merge() {
        let (a, b) = (secret("abcdefgh"), secret("efghijkl"));
        let s = Scrubber::new([("A", &a), ("B", &b)]);
        assert_eq!(s.scrub(b"<abcdefghijkl>"), b"<[REDACTED:A,B]>");
        let (outer, inner) = (secret("0123456789"), secret("23456789"));
        let s = Scrubber::new([("OUTER", &outer), ("INNER", &inner)]);
        assert_eq!(s.scrub(b"(0123456789)"), b"([REDACTED:OUTER,INNER])");
    }

    #[test]
    fn truncated_secret_at_end_is_redacted() {
        let v = secret("sk-or-v1-0123456789");
        let s = Scrubber::new([("KEY", &v)]);
        assert_eq!(s.scrub(b"token: sk-or-v1-01"), b"token: [REDACTED:KEY]");
        // Too short to be sure it is a secret: released as is.
        assert_eq!(s.scrub(b"token: sk-o"), b"token: sk-o");
    }

    #[test]
    fn names_in_finds_values_in_any_form() {
        let (a, b) = (secret("token-aaaaaaaa"), secret("token-bbbbbbbb"));
        let s = Scrubber::new([("A", &a), ("B", &b)]);
        let hex: String = "token-bbbbbbbb"
            .bytes()
            .map(|x| format!("{x:02X}"))
            .collect();
        assert_eq!(
            s.names_in(format!("Authorization: {hex}").as_bytes()),
            vec!["B"]
        );
        assert_eq!(
            s.names_in(b"x token-aaaaaaaa y token-bbbbbbbb"),
            vec!["A", "B"]
        );
        assert!(s.names_in(b"token-cccccccc").is_empty());
        assert!(Scrubber::empty().names_in(b"token-aaaaaaaa").is_empty());
    }

    #[test]
    fn empty_scrubber_passes_through() {
        let s = Scrubber::empty();
        assert_eq!(s.scrub(b"anything at all"), b"anything at all");
    }
}
