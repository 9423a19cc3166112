//! Finding where a pattern may start, fast: a sampled 4-gram filter.
//!
//! Every pattern is at least [`ANCHOR_LEN`] (8) bytes; its first 8 bytes are
//! its *anchor*. An anchor starting at position `s` always contains the
//! aligned 4-byte block at `i = ceil(s / 4) * 4`, at offset `i - s` in 0..4.
//! So the index keeps, in a bitset, a hash of each anchor's 4-grams at
//! offsets 0..4, and the scan probes only one block in four: one multiply,
//! one shift and one bit test per 4 bytes of text. A hit is then checked
//! exactly (the 8 bytes at each of the 4 candidate starts against the sorted
//! anchors) before any full pattern is compared.
//!
//! This is several times faster than a general multi-pattern automaton once
//! there are more patterns than SIMD searchers (Teddy) take, and it keeps
//! every secret-derived byte in buffers we own and wipe.

use zeroize::Zeroizing;

/// Bytes of a pattern used as its anchor; every pattern is at least this long.
pub(crate) const ANCHOR_LEN: usize = 8;

/// Exact anchors plus the bitset filter over their 4-grams.
pub(crate) struct AnchorIndex {
    /// Sorted anchors (8 bytes as little-endian u64).
    anchors: Zeroizing<Vec<u64>>,
    /// Bitset of hashed 4-grams.
    filter: Zeroizing<Vec<u64>>,
    shift: u32,
}

fn hash(block: u32, shift: u32) -> usize {
    (block.wrapping_mul(0x9E37_79B1) >> shift) as usize
}

impl AnchorIndex {
    /// Builds the index. `anchors` must be sorted and unique.
    pub(crate) fn new(anchors: Vec<u64>) -> Self {
        // About 256 bits per 4-gram keeps false hits near 0.4 %.
        let bits = (anchors.len() * 4 * 256)
            .next_power_of_two()
            .clamp(1 << 12, 1 << 23);
        let mut filter = Zeroizing::new(vec![0u64; bits / 64]);
        let shift = 32 - bits.trailing_zeros();
        for &anchor in anchors.iter() {
            let bytes = anchor.to_le_bytes();
            for offset in 0..4 {
                let gram =
                    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
                let h = hash(gram, shift);
                filter[h / 64] |= 1 << (h % 64);
            }
        }
        AnchorIndex {
            anchors: Zeroizing::new(anchors),
            filter,
            shift,
        }
    }

    /// Calls `found(start, anchor_id)` for every position where an anchor
    /// occurs in `text`, in increasing order of `start`.
    pub(crate) fn for_each(&self, text: &[u8], mut found: impl FnMut(usize, usize)) {
        if text.len() < ANCHOR_LEN {
            return;
        }
        let filter = &self.filter[..];
        let blocks = text.len() / 4;
        for b in 0..blocks {
            let i = b * 4;
            let gram = u32::from_le_bytes(text[i..i + 4].try_into().expect("4 bytes"));
            let h = hash(gram, self.shift);
            if filter[h / 64] & (1 << (h % 64)) == 0 {
                continue;
            }
            // Candidates whose first aligned block is this one.
            for start in i.saturating_sub(3)..=i {
                let Some(window) = text.get(start..start + ANCHOR_LEN) else {
                    break;
                };
                let anchor = u64::from_le_bytes(window.try_into().expect("8 bytes"));
                if let Ok(id) = self.anchors.binary_search(&anchor) {
                    found(start, id);
                }
            }
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.anchors.capacity() * 8 + self.filter.capacity() * 8
    }
}

/// The anchor of a pattern as a u64 (the pattern must be at least 8 bytes).
pub(crate) fn anchor_of(pattern: &[u8]) -> u64 {
    u64::from_le_bytes(
        pattern[..ANCHOR_LEN]
            .try_into()
            .expect("patterns are at least 8 bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_occurrence_at_every_offset() {
        let words: [&[u8]; 3] = [b"abcdefgh", b"efgh1234", b"zzzzzzzz"];
        let mut anchors: Vec<u64> = words.iter().map(|w| anchor_of(w)).collect();
        anchors.sort_unstable();
        let index = AnchorIndex::new(anchors.clone());
        for pad in 0..9 {
            let mut text = vec![b'.'; pad];
            text.extend_from_slice(b"abcdefgh1234zzzzzzzzz");
            let mut hits = Vec::new();
            index.for_each(&text, |start, id| hits.push((start, id)));
            let expect =
                |w: &[u8], at: usize| (pad + at, anchors.binary_search(&anchor_of(w)).unwrap());
            assert_eq!(
                hits,
                vec![
                    expect(words[0], 0),
                    expect(words[1], 4),
                    expect(words[2], 12),
                    expect(words[2], 13)
                ],
                "pad {pad}"
            );
        }
    }
}
