//! Host-side injection's costs, each beside a baseline in the same run.
//!
//! - `inject_invoke/narakim_placeholders`: one node invocation of
//!   tests/guests/placeholders (0.2.0: two `credentials.get`, no plaintext)
//!   as the engine runs each node of an execution: plan, store,
//!   instantiate, `run`, two placeholders issued, scrub and `‹NAME›` the
//!   captures, check the output. The execution's snapshot and guard are
//!   made once per execution, not per node, so outside the loop.
//! - `inject_invoke/narakim_one_node_execution`: the same with the
//!   per-execution work too (snapshot, guard kept from the bot's previous
//!   execution): what a one-node graph costs.
//! - `inject_invoke/bare_wasmtime`: the same component on the runtime's own
//!   engine with a bare host answering `credentials.get` with a constant.
//!   Goal: narakim ≤ 1.3× this.
//! - `inject_request/substitute_and_reflect`: `inject::Credentials` on a
//!   Discord-sized request carrying one placeholder in `Authorization`, then
//!   its 600-byte echo through the reflector; `inject_request/no_credential`
//!   is the same request without a placeholder, through the scan every
//!   request pays.
//! - `inject_http/with_credential` and `inject_http/without_credential`:
//!   tests/guests/thief sending one request to a loopback echo with its
//!   credential in the declared header, or the same request without it.
//!
//! Run `cargo bench --bench inject` (it builds tests/guests first).

#[path = "support/wasm.rs"]
mod wasm;

#[path = "support/bare.rs"]
mod bare_host;

use bare_host::BareState;

use criterion::{Criterion, criterion_group, criterion_main};
use narakim::runtime::inject::{Credentials, Injection, Request};
use narakim::runtime::{Limits, Runtime, Upstream};
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker, Resource};
use zeroize::Zeroizing;

pub struct BareCredential;

mod bare {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "narakim:extension/extension@0.2.0",
        imports: { default: trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "narakim:extension/credentials.credential": super::BareCredential,
        },
    });
}

use bare::narakim::extension0_2_0 as v2;

impl v2::credentials::Host for BareState {
    fn get(
        &mut self,
        _: String,
    ) -> wasmtime::Result<Result<Resource<BareCredential>, v2::types::SecretError>> {
        Ok(Ok(self.table.push(BareCredential)?))
    }
}

impl v2::credentials::HostCredential for BareState {
    fn placeholder(&mut self, _: Resource<BareCredential>) -> wasmtime::Result<String> {
        Ok("nrkph_00000000000000000000000000000000".into())
    }
    fn hosts(&mut self, _: Resource<BareCredential>) -> wasmtime::Result<Vec<String>> {
        Ok(vec![])
    }
    fn hmac_sha256(
        &mut self,
        _: Resource<BareCredential>,
        _: Vec<u8>,
    ) -> wasmtime::Result<Vec<u8>> {
        Ok(vec![])
    }
    fn drop(&mut self, this: Resource<BareCredential>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl v2::secrets::Host for BareState {
    fn get(&mut self, _: String) -> wasmtime::Result<Result<String, v2::types::SecretError>> {
        Ok(Ok(String::new()))
    }
}

impl v2::log::Host for BareState {
    fn log(&mut self, _: v2::log::Level, _: String) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl v2::types::Host for BareState {}

/// A loopback HTTP/1.1 server answering each request with itself.
fn echo() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_nodelay(true);
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let end = loop {
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..at]).to_ascii_lowercase();
                            let length: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length: "))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if buf.len() >= at + 4 + length {
                                break at + 4 + length;
                            }
                        }
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let request: Vec<u8> = buf.drain(..end).collect();
                    // One write: a head and a body written apart would wait
                    // out Nagle and a delayed ACK (40 ms) on every request.
                    let mut answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                        request.len()
                    )
                    .into_bytes();
                    answer.extend_from_slice(&request);
                    if conn.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn bench(c: &mut Criterion) {
    let dir = wasm::build("tests/guests", None);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let (_data, mut vault) = bare_host::vault_with_two_secrets();
    let port = echo();
    let runtime = Runtime::new(Limits::default(), None)
        .unwrap()
        .with_upstreams([format!("api.example.test=http://127.0.0.1:{port}")
            .parse::<Upstream>()
            .unwrap()]);
    let placeholders = tokio
        .block_on(runtime.load(&dir.join("placeholders.wasm")))
        .unwrap();
    let thief = tokio
        .block_on(runtime.load(&dir.join("thief.wasm")))
        .unwrap();

    let engine = runtime.engine().clone();
    let mut linker: Linker<BareState> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
    v2::credentials::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    v2::secrets::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    v2::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    let component = Component::from_file(&engine, dir.join("placeholders.wasm")).unwrap();
    let pre = bare::ExtensionPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();

    let mut group = c.benchmark_group("inject_invoke");
    let snapshot = vault.snapshot_for_bot("greeter").unwrap();
    let guard = runtime
        .guard(&snapshot, [(placeholders.description(), "{}")])
        .unwrap();
    let invoke = |guard: &narakim::runtime::ExecutionGuard| {
        let out = tokio
            .block_on(runtime.invoke(&placeholders, "node", guard, "{}", "{}"))
            .unwrap();
        assert!(out.result.is_ok());
    };
    let bare = || {
        tokio.block_on(async {
            let mut store = Store::new(&engine, BareState::new());
            store.set_epoch_deadline(1_000_000);
            let instance = pre.instantiate_async(&mut store).await.unwrap();
            let out = instance.call_run(&mut store, "{}", "{}").await.unwrap();
            assert!(out.is_ok());
        })
    };
    group.bench_function("narakim_placeholders", |b| b.iter(|| invoke(&guard)));
    group.bench_function("narakim_one_node_execution", |b| {
        b.iter(|| {
            let snapshot = vault.snapshot_for_bot("greeter").unwrap();
            invoke(
                &runtime
                    .guard(&snapshot, [(placeholders.description(), "{}")])
                    .unwrap(),
            )
        })
    });
    group.bench_function("bare_wasmtime", |b| b.iter(bare));
    group.finish();
    if interleaving_wanted() {
        interleaved(
            "inject_invoke narakim_placeholders / bare_wasmtime",
            || invoke(&guard),
            bare,
        );
    }

    // The substitution core on its own.
    let mut credentials = Credentials::default();
    let placeholder = credentials.issue(
        "DISCORD_BOT_TOKEN",
        Zeroizing::new("MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.bench-token-0123456789".into()),
        vec!["discord.com".into()],
        Injection {
            headers: vec![("authorization".into(), "Bot {}".into())],
            ..Injection::default()
        },
    );
    let body = br#"{"content":"Hello from the bench: a message of a realistic size, with some words in it.","allowed_mentions":{"parse":[]}}"#.to_vec();
    let request = |authorization: String| Request {
        method: "POST".into(),
        host: "discord.com".into(),
        authority: "discord.com".into(),
        secure: true,
        path: "/api/v10/channels/876543210987654321/messages".into(),
        query: None,
        headers: vec![
            ("authorization".into(), authorization.into_bytes()),
            (
                "user-agent".into(),
                b"DiscordBot (https://github.com/narakim/narakim, 0.2.0)".to_vec(),
            ),
            ("content-type".into(), b"application/json".to_vec()),
            ("content-length".into(), body.len().to_string().into_bytes()),
        ],
        body: body.clone(),
    };
    let with = request(format!("Bot {placeholder}"));
    let without = request("Bot not-a-credential".into());
    let echoed = format!(
        "POST /api/v10/channels/876543210987654321/messages HTTP/1.1\r\nauthorization: Bot MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.bench-token-0123456789\r\n{}",
        String::from_utf8_lossy(&body).repeat(4)
    );
    let mut group = c.benchmark_group("inject_request");
    group.bench_function("substitute_and_reflect", |b| {
        b.iter(|| {
            let mut r = with.clone();
            let uses = credentials.substitute(&mut r).unwrap();
            assert_eq!(uses.len(), 1);
            let back = credentials.reflect(echoed.as_bytes());
            std::hint::black_box(back);
        })
    });
    let none = Credentials::default();
    group.bench_function("no_credential", |b| {
        b.iter(|| {
            let mut r = without.clone();
            let uses = none.substitute(&mut r).unwrap();
            assert!(uses.is_empty());
        })
    });
    group.finish();

    // One real request each, through wasi:http and the egress policy.
    let mut invoke = |config: &str| {
        let snapshot = vault.snapshot_for_bot("greeter").unwrap();
        let guard = runtime
            .guard(&snapshot, [(thief.description(), config)])
            .unwrap();
        let out = tokio
            .block_on(runtime.invoke(&thief, "node", &guard, config, "{}"))
            .unwrap();
        assert!(out.result.is_ok(), "{out:?}");
    };
    let mut group = c.benchmark_group("inject_http");
    group.bench_function("with_credential", |b| {
        b.iter(|| invoke(r#"{"mode":"header"}"#))
    });
    group.bench_function("without_credential", |b| {
        b.iter(|| invoke(r#"{"mode":"plain"}"#))
    });
    group.finish();
}

/// Whether this run measures (`--bench`, not `--profile-time` or test
/// mode) and its filter, if any, names the invocation group.
fn interleaving_wanted() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--profile-time") {
        return false;
    }
    let with_value = ["--warm-up-time", "--measurement-time", "--sample-size"];
    let mut filters = Vec::new();
    let mut skip = false;
    for arg in &args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if with_value.contains(&arg.as_str()) {
            skip = true;
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    filters.is_empty() || filters.iter().any(|f| f.contains("inject_invoke"))
}

/// `a` against `b` in alternating rounds of the same length, so a slow
/// spell of this shared machine falls on both alike: each round's ratio
/// of per-iteration times, and their median and quartiles.
fn interleaved(name: &str, mut a: impl FnMut(), mut b: impl FnMut()) {
    const ROUNDS: usize = 41;
    const PER_ROUND: u32 = 1000;
    let time = |f: &mut dyn FnMut()| {
        let start = std::time::Instant::now();
        for _ in 0..PER_ROUND {
            f();
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(PER_ROUND)
    };
    for _ in 0..PER_ROUND {
        a();
        b();
    }
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always follows the other.
        let (x, y) = if round % 2 == 0 {
            let x = time(&mut a);
            (x, time(&mut b))
        } else {
            let y = time(&mut b);
            (time(&mut a), y)
        };
        ta.push(x);
        tb.push(y);
        ratios.push(x / y);
    }
    let quartiles = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 4], v[v.len() / 2], v[v.len() * 3 / 4])
    };
    let (r1, r2, r3) = quartiles(&mut ratios);
    let (_, ma, _) = quartiles(&mut ta);
    let (_, mb, _) = quartiles(&mut tb);
    println!(
        "{name}: median {ma:.2} µs / {mb:.2} µs; ratio median {r2:.3}× (quartiles {r1:.3}× – {r3:.3}×) over {ROUNDS} interleaved rounds of {PER_ROUND}"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
