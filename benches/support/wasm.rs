//! Building the components a bench runs, from source, for wasm32-wasip2.

use std::path::{Path, PathBuf};

/// Builds the wasm workspace at `dir` (relative to the crate root) in
/// release mode, only `package` when given, and returns its output folder.
pub fn build(dir: &str, package: Option<&str>) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut command =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(&dir)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
        ])
        // The outer cargo's settings are for the host crate, not these.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    if let Some(package) = package {
        command.args(["-p", package]);
    }
    let status = command.status().expect("running cargo to build components");
    assert!(
        status.success(),
        "building {} for wasm32-wasip2 failed",
        dir.display()
    );
    dir.join("target/wasm32-wasip2/release")
}
