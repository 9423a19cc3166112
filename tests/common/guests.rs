//! Test components, built from source (tests/guests) for wasm32-wasip2 the
//! first time a test asks for one. No prebuilt binary is committed.

use std::path::PathBuf;
use std::sync::OnceLock;

fn guests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/guests")
}

/// Path of the built component `name` (crate name with `_` for `-`).
pub fn component(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(guests_dir())
            .args(["build", "--release", "--locked", "--target", "wasm32-wasip2"])
            // The outer cargo's settings are for the host crate, not these.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("running cargo to build the test components");
        assert!(
            status.success(),
            "building tests/guests for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
        );
    });
    // Libraries are named with `_`, binaries keep their `-`.
    let dir = guests_dir().join("target/wasm32-wasip2/release");
    [name.replace('-', "_"), name.to_owned()]
        .into_iter()
        .map(|n| dir.join(format!("{n}.wasm")))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name}.wasm was not built in {}", dir.display()))
}
