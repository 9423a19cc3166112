//! Scrubber throughput on 64 KiB chunks of log text, beside a naive
//! baseline in the style of the GitHub Actions runner (replace every variant
//! of every secret, one after another), measured in the same run.
//!
//! - `scrub/10_secrets`, `scrub/100_secrets`: goals ≥ 1 GB/s and ≥ 0.5 GB/s.
//! - `naive/10_secrets`, `naive/100_secrets`: the baseline; goal ≥ 10× faster.
//!
//! The memory each scrubber uses is printed before the run (`heap_bytes`).
//! Run with `cargo bench --bench scrub`; results go in BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;

use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use narakim::redact::Scrubber;
use narakim::vault::SecretValue;

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 16;

/// Deterministic xorshift, so every run scrubs the same text.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

fn secrets(count: usize, rng: &mut Rng) -> Vec<(String, String)> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    (0..count)
        .map(|i| {
            let len = 24 + (rng.next() % 48) as usize;
            let value: String = (0..len).map(|_| *rng.pick(ALPHABET) as char).collect();
            (format!("SECRET_{i:03}"), value)
        })
        .collect()
}

/// Log lines with, about every 8 KiB, one secret in a random encoding.
fn log_text(secrets: &[(String, String)], rng: &mut Rng) -> Vec<u8> {
    let words = [
        "GET",
        "POST",
        "/api/v10/channels",
        "status=200",
        "latency_ms=12",
        "user=42",
        "ok",
        "retry",
        "queue=depth:3",
    ];
    let mut text = Vec::with_capacity(CHUNK * CHUNKS + 256);
    let mut next_secret = 8192;
    let mut line = 0u64;
    while text.len() < CHUNK * CHUNKS {
        line += 1;
        text.extend_from_slice(
            format!(
                "2026-11-26T07:{:02}:{:02}Z INFO req={line:08x}",
                line / 60 % 60,
                line % 60
            )
            .as_bytes(),
        );
        for _ in 0..6 {
            text.push(b' ');
            text.extend_from_slice(rng.pick(&words).as_bytes());
        }
        if text.len() > next_secret {
            next_secret += 8192;
            let (_, value) = rng.pick(secrets);
            let planted = match rng.next() % 4 {
                0 => value.clone(),
                1 => base64::engine::general_purpose::STANDARD.encode(value),
                2 => value.bytes().map(|b| format!("{b:02x}")).collect(),
                _ => format!("{{\"token\":\"{value}\"}}"),
            };
            text.extend_from_slice(b" auth=");
            text.extend_from_slice(planted.as_bytes());
        }
        text.push(b'\n');
    }
    text.truncate(CHUNK * CHUNKS);
    text
}

fn build(secrets: &[(String, String)]) -> (Arc<Scrubber>, Vec<SecretValue>) {
    let values: Vec<SecretValue> = secrets
        .iter()
        .map(|(_, v)| SecretValue::new(v.clone()).unwrap())
        .collect();
    let scrubber = Scrubber::new(
        secrets
            .iter()
            .zip(&values)
            .map(|((n, _), v)| (n.as_str(), v)),
    );
    (scrubber, values)
}

/// The baseline: every variant replaced in turn over each chunk, as the
/// GitHub Actions runner masks a line (without its per-line splitting, which
/// would only make it slower).
fn naive(variants: &[(Vec<u8>, String)], chunk: &[u8]) -> Vec<u8> {
    let mut text = String::from_utf8_lossy(chunk).into_owned();
    for (needle, label) in variants {
        let needle = std::str::from_utf8(needle).unwrap();
        if text.contains(needle) {
            text = text.replace(needle, label);
        }
    }
    text.into_bytes()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("scrub");
    group.throughput(Throughput::Bytes((CHUNK * CHUNKS) as u64));
    group.sample_size(20);
    for count in [10, 100] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ count as u64);
        let secrets = secrets(count, &mut rng);
        let text = log_text(&secrets, &mut rng);
        let (scrubber, _values) = build(&secrets);
        eprintln!(
            "{count} secrets: {} patterns, scrubber heap {} KiB",
            scrubber.pattern_count(),
            scrubber.heap_bytes() / 1024
        );
        // Sanity: the scrubbed text holds no raw value.
        let scrubbed = scrubber.scrub(&text);
        for (_, v) in &secrets {
            assert!(!scrubbed.windows(v.len()).any(|w| w == v.as_bytes()));
        }
        group.bench_function(format!("{count}_secrets"), |b| {
            b.iter(|| {
                let mut stream = scrubber.stream();
                let mut out = Vec::with_capacity(CHUNK + 1024);
                for chunk in text.chunks(CHUNK) {
                    out.clear();
                    stream.write(chunk, &mut out);
                    black_box(&out);
                }
                stream.finish(&mut out);
            })
        });
        let variants: Vec<(Vec<u8>, String)> = secrets
            .iter()
            .flat_map(|(name, value)| {
                narakim::redact::forms_of(value)
                    .into_iter()
                    .map(move |f| (f, format!("[REDACTED:{name}]")))
            })
            .collect();
        group.bench_function(format!("naive_{count}_secrets"), |b| {
            b.iter(|| {
                for chunk in text.chunks(CHUNK) {
                    black_box(naive(&variants, chunk));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
