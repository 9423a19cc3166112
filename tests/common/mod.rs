//! Shared harness for the integration tests: a real `narakim` binary on a
//! real SQLite file in a temporary directory.
#![allow(dead_code)] // each test crate uses a different part of it

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use narakim::vault::{KeySource, Vault, VaultConfig};

pub mod extensions;
pub mod guests;
pub mod http;
pub mod listening;
pub mod recorder;
pub mod server;
pub mod services;

/// A vault in a temp dir: data in `root/data`, key in `root/config`.
pub struct TestVault {
    pub root: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        &self.stdout
    }

    /// Asserts failure with a non-zero exit code and an `error:` on stderr
    /// that contains `needle`; returns stderr.
    #[track_caller]
    pub fn fails_with(&self, needle: &str) -> &str {
        assert_ne!(self.code, 0, "expected failure, got {self:#?}");
        assert!(
            self.stderr.contains(needle),
            "stderr should contain {needle:?}: {self:#?}"
        );
        &self.stderr
    }

    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_narakim")
}

/// A command for the binary with a clean environment: no NARAKIM_* or XDG
/// variables leak in from the machine running the tests.
pub fn command() -> Command {
    let mut cmd = Command::new(binary());
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        if key_str.starts_with("NARAKIM_") || key_str.starts_with("XDG_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("NARAKIM_ACTOR", "test-suite");
    cmd
}

impl TestVault {
    /// An initialised vault.
    pub fn new() -> Self {
        let v = Self::uninitialised();
        v.run(&["init"]).ok();
        v
    }

    /// Paths only; `narakim init` not yet run.
    pub fn uninitialised() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let data_dir = root.path().join("data");
        let key_file = root.path().join("config").join("master.key");
        TestVault {
            root,
            data_dir,
            key_file,
        }
    }

    /// `narakim --data-dir … --key-file … ARGS`, stdin closed.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    /// Same, with `input` on stdin (a pipe, so not a terminal).
    pub fn run_with_stdin(&self, args: &[&str], input: Option<&[u8]>) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        run_command(cmd, input)
    }

    /// The binary with this vault's --data-dir and --key-file.
    pub fn command(&self) -> Command {
        let mut cmd = command();
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--key-file")
            .arg(&self.key_file);
        cmd
    }

    /// `narakim token create ARGS`: the new token.
    #[track_caller]
    pub fn token(&self, args: &[&str]) -> String {
        let args: Vec<&str> = ["token", "create"].iter().chain(args).copied().collect();
        self.run(&args).ok().trim().to_owned()
    }

    /// `printf %s VALUE | narakim secret set NAME --bot|--team OWNER`.
    #[track_caller]
    pub fn set(&self, name: &str, scope_flag: &str, owner: &str, value: &str) {
        self.run_with_stdin(
            &["secret", "set", name, scope_flag, owner],
            Some(value.as_bytes()),
        )
        .ok();
    }

    pub fn config(&self) -> VaultConfig {
        VaultConfig::new(
            self.data_dir.clone(),
            KeySource::File(self.key_file.clone()),
        )
    }

    /// Opens the vault through the library (for checks that need decryption,
    /// which no command offers).
    pub fn open(&self) -> Vault {
        Vault::open(self.config()).unwrap_or_else(|e| panic!("open vault: {e}"))
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("vault.db")
    }

    /// A raw connection to the database file, for tests that tamper with it.
    pub fn raw_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db_path()).expect("open raw db")
    }

    /// Contents of the database, its WAL, shm and journal (missing = empty).
    pub fn file_bytes(&self) -> Vec<(PathBuf, Vec<u8>)> {
        narakim::vault::store::database_files(&self.data_dir)
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap_or_default();
                (p, bytes)
            })
            .collect()
    }

    /// Everything stored, as text: teams, bots, secret rows (with their
    /// ciphertext in hex), audit entries and meta. Used to prove a failed
    /// command changed nothing.
    pub fn dump(&self) -> String {
        // immutable=1: no locks, no -wal or -shm files left behind, so a
        // dump never changes what it inspects.
        let conn = rusqlite::Connection::open_with_flags(
            format!("file:{}?immutable=1", self.db_path().display()),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
        .expect("open read-only");
        let mut out = String::new();
        for table in ["meta", "teams", "bots", "secrets", "api_tokens", "audit"] {
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1"))
                .expect("prepare dump");
            let cols = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    let mut line = String::new();
                    for i in 0..cols {
                        let v: rusqlite::types::Value = r.get(i)?;
                        line.push_str(&format!("{v:?}|"));
                    }
                    Ok(line)
                })
                .expect("dump rows");
            out.push_str(&format!("[{table}]\n"));
            for row in rows {
                out.push_str(&row.expect("row"));
                out.push('\n');
            }
        }
        out
    }
}

/// Runs `cmd` with `input` on stdin (a pipe, so not a terminal). The binary
/// may exit before reading all of it (it refuses bad input early): a broken
/// pipe is not an error.
pub fn run_command(mut cmd: Command, input: Option<&[u8]>) -> Run {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn narakim");
    let writer = input.map(|input| {
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        std::thread::spawn(move || match stdin.write_all(&input) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => panic!("writing stdin: {e}"),
        })
    });
    let out = child.wait_with_output().expect("wait narakim");
    if let Some(writer) = writer {
        writer.join().expect("stdin writer");
    }
    Run::from(out)
}

/// Every encoding of `value` a careless leak would show: raw, hex (both
/// cases) and base64 (standard and URL-safe, padded and not).
pub fn encodings(value: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        value.as_bytes().to_vec(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
        STANDARD.encode(value).into_bytes(),
        URL_SAFE_NO_PAD.encode(value).into_bytes(),
    ]
}

/// Asserts no file among `files` holds `value` in any encoding.
#[track_caller]
pub fn assert_absent(files: &[(PathBuf, Vec<u8>)], value: &str) {
    for (path, bytes) in files {
        for needle in encodings(value) {
            assert!(
                !contains(bytes, &needle),
                "{} holds a planted value (as {:?})",
                path.display(),
                String::from_utf8_lossy(&needle[..needle.len().min(12)])
            );
        }
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads an exact file's bytes, empty when missing.
pub fn read_or_empty(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}
