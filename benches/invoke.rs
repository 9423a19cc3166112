//! Invocation overhead for a trivial component that reads two secrets
//! (tests/guests/well-behaved), beside a bare wasmtime baseline in the same
//! run.
//!
//! - `invoke/narakim`: what one node invocation costs, as the engine runs
//!   it: snapshot the bot's secrets from SQLite, the execution's guard (the
//!   values and scrubber the bot's previous execution decrypted, kept since
//!   its secrets did not change), plan (config), new store, instantiate
//!   from the pre-linked component, call `run`, two `secrets.get` (copies of
//!   the guard's values), scrub stdout/stderr/logs, parse, re-serialise and
//!   check the output, drop. Goals: p50 ≤ 60 µs, ≥ 15,000 invocations per
//!   second per core, ≤ 1.3× the baseline.
//! - `invoke/narakim_first_after_change`: the same, for the first
//!   execution after a write or rotation: the guard decrypts every value of
//!   the snapshot and builds the scrubber over them.
//! - `invoke/bare_wasmtime`: the same component instantiated from an
//!   `InstancePre` on the runtime's own engine (same pooling allocator,
//!   limits and epoch interruption) and called, with a host that answers
//!   `secrets.get` from constants and captures nothing.
//! - `invoke/bare_wasmtime_default_pool`: the same bare host on an engine
//!   with wasmtime's default pooling settings: what an embedder gets out of
//!   the box.
//!
//! Run `cargo bench --bench invoke` (it builds tests/guests first).

#[path = "support/wasm.rs"]
mod wasm;

#[path = "support/bare.rs"]
mod bare_host;

use bare_host::BareState;

use criterion::{Criterion, criterion_group, criterion_main};
use narakim::runtime::{ExecutionGuard, Limits, Runtime};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

mod bare {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "narakim:extension/extension@0.1.0",
        imports: { default: trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        },
    });
}

impl bare::narakim::extension0_1_0::secrets::Host for BareState {
    fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<String, bare::narakim::extension0_1_0::secrets::SecretError>> {
        Ok(Ok(format!("constant-value-of-{name}")))
    }
}

impl bare::narakim::extension0_1_0::log::Host for BareState {
    fn log(
        &mut self,
        _: bare::narakim::extension0_1_0::log::Level,
        _: String,
    ) -> wasmtime::Result<()> {
        Ok(())
    }
}

fn guest() -> std::path::PathBuf {
    wasm::build("tests/guests", Some("well-behaved")).join("well_behaved.wasm")
}

fn bench(c: &mut Criterion) {
    let path = guest();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // narakim: a real vault with the two secrets.
    let (_dir, mut vault) = bare_host::vault_with_two_secrets();
    let runtime = Runtime::new(Limits::default(), None).unwrap();
    let extension = tokio.block_on(runtime.load(&path)).unwrap();

    // Baseline: bare wasmtime on the very same engine (same pooling
    // allocator, limits and epoch interruption), so the ratio is the host's
    // own overhead.
    let engine = runtime.engine().clone();
    let mut linker: Linker<BareState> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
    bare::narakim::extension0_1_0::secrets::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
        .unwrap();
    bare::narakim::extension0_1_0::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    let component = Component::from_file(&engine, &path).unwrap();
    let pre = bare::ExtensionPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();

    // A second baseline: the same bare host on wasmtime's default pooling
    // settings, what an embedder gets out of the box.
    let mut default_config = Config::new();
    default_config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
            Default::default(),
        ));
    let default_engine = Engine::new(&default_config).unwrap();
    let mut default_linker: Linker<BareState> = Linker::new(&default_engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut default_linker).unwrap();
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut default_linker).unwrap();
    bare::narakim::extension0_1_0::secrets::add_to_linker::<_, HasSelf<_>>(
        &mut default_linker,
        |s| s,
    )
    .unwrap();
    bare::narakim::extension0_1_0::log::add_to_linker::<_, HasSelf<_>>(&mut default_linker, |s| s)
        .unwrap();
    let default_component = Component::from_file(&default_engine, &path).unwrap();
    let default_pre =
        bare::ExtensionPre::new(default_linker.instantiate_pre(&default_component).unwrap())
            .unwrap();

    let mut group = c.benchmark_group("invoke");
    // One execution of one node, as the engine runs it: its guard reuses
    // the values (and scrubber) the bot's previous execution decrypted,
    // since its secrets did not change.
    group.bench_function("narakim", |b| {
        b.iter(|| {
            let snapshot = vault.snapshot_for_bot("greeter").unwrap();
            let guard = runtime
                .guard(&snapshot, [(extension.description(), "{}")])
                .unwrap();
            let out = tokio
                .block_on(runtime.invoke(&extension, "node", &guard, "{}", "{}"))
                .unwrap();
            assert!(out.result.is_ok());
        })
    });
    // The first execution after a write or rotation: its guard decrypts
    // every value of the snapshot and builds the scrubber over them.
    group.bench_function("narakim_first_after_change", |b| {
        b.iter(|| {
            let snapshot = vault.snapshot_for_bot("greeter").unwrap();
            let guard = ExecutionGuard::new(&snapshot, [(extension.description(), "{}")]).unwrap();
            let out = tokio
                .block_on(runtime.invoke(&extension, "node", &guard, "{}", "{}"))
                .unwrap();
            assert!(out.result.is_ok());
        })
    });
    for (name, engine, pre) in [
        ("bare_wasmtime", &engine, &pre),
        ("bare_wasmtime_default_pool", &default_engine, &default_pre),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                tokio.block_on(async {
                    let mut store = Store::new(engine, BareState::new());
                    store.set_epoch_deadline(1_000_000);
                    let instance = pre.instantiate_async(&mut store).await.unwrap();
                    let out = instance.call_run(&mut store, "{}", "{}").await.unwrap();
                    assert!(out.is_ok());
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
