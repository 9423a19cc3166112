//! The sample extensions (extensions/), built from source for wasm32-wasip2
//! the first time a test asks for one. No prebuilt binary is committed.

use std::path::PathBuf;
use std::sync::OnceLock;

fn extensions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("extensions")
}

/// Path of the built sample extension `name` (its crate name, for example
/// `discord-send-message`; the file is `discord_send_message.wasm`).
pub fn extension(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(extensions_dir())
            .args(["build", "--release", "--locked", "--target", "wasm32-wasip2"])
            // The outer cargo's settings are for the host crate, not these.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("running cargo to build the sample extensions");
        assert!(
            status.success(),
            "building extensions/ for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`; \
             is extensions/Cargo.lock up to date? `cd extensions && cargo build --release --target wasm32-wasip2`)"
        );
    });
    let path = extensions_dir()
        .join("target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "{name}: {} was not built", path.display());
    path
}
