//! What the invocation benches share: a bare host's store state (WASI and
//! wasi:http, nothing captured), and a vault with bot `greeter` holding the
//! two secrets the test components read.

use narakim::vault::{KeySource, Scope, SecretName, SecretValue, Vault, VaultConfig};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The store state of a bare host.
pub struct BareState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
}

impl BareState {
    pub fn new() -> Self {
        BareState {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for BareState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: wasmtime_wasi_http::default_hooks(),
        }
    }
}

/// A vault (in the returned directory) with team `ops` and bot `greeter`
/// holding `API_TOKEN` and `APP_ID`.
pub fn vault_with_two_secrets() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let config = VaultConfig::new(
        dir.path().join("data"),
        KeySource::File(dir.path().join("config/master.key")),
    );
    Vault::init(&config).unwrap();
    let mut vault = Vault::open(config).unwrap();
    vault.create_team("ops").unwrap();
    vault.create_bot("greeter", "ops").unwrap();
    let bot = Scope::Bot("greeter".into());
    for (name, value) in [
        ("API_TOKEN", "tok-3f9a8b7c6d5e4f3a2b1c"),
        ("APP_ID", "app-1234567890"),
    ] {
        vault
            .set_secret(
                &bot,
                &SecretName::new(name).unwrap(),
                &SecretValue::new(value.into()).unwrap(),
            )
            .unwrap();
    }
    (dir, vault)
}
