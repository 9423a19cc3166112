//! Bad input, driven through the real binary: every kind gets a clear
//! `error:` on stderr, a non-zero exit code, and leaves the vault exactly as
//! it was (same rows, same database bytes, same key file, no new files).
//!
//! Most kinds are rows of one table ([`cases`]); each row runs against its
//! own freshly planted vault. Kinds whose setup differs have their own test.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{Run, TestVault};

/// Values planted in every vault; no error may ever show one.
const TEAM_SECRET: &str = "planted-team-value-TTTTTTTTTTTT";
const BOT_SECRET: &str = "planted-bot-value-BBBBBBBBBBBBB";
const API_SECRET: &str = "sk-or-v1-planted-OOOOOOOOOOOOOOOO";
/// A well-formed value piped in by cases that fail before it matters.
const GOOD_VALUE: &[u8] = b"fresh-value-GGGGGGGGGGGG";
/// A value typed on the command line by mistake.
const ARGV_VALUE: &str = "argv-value-hunter2-ZZZZ";

// ---------------------------------------------------------------------------
// Fixture: a planted vault plus a scratch directory for other files.
// ---------------------------------------------------------------------------

struct Fixture {
    v: TestVault,
    /// Scratch space outside the vault: other keys, other data dirs.
    aux: tempfile::TempDir,
}

impl Fixture {
    /// An initialised vault with team `ops`, bot `greeter` and three secrets.
    fn planted() -> Self {
        let v = TestVault::new();
        v.run(&["team", "create", "ops"]).ok();
        v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
        v.set("DISCORD_BOT_TOKEN", "--team", "ops", TEAM_SECRET);
        v.set("DISCORD_BOT_TOKEN", "--bot", "greeter", BOT_SECRET);
        v.set("OPENROUTER_API_KEY", "--bot", "greeter", API_SECRET);
        Fixture {
            v,
            aux: tempfile::tempdir().expect("aux tempdir"),
        }
    }

    /// `narakim --data-dir <vault> --key-file <vault key> ARGS`.
    fn vault(&self, args: &[&str]) -> Invocation {
        let mut cmd = self.v.command();
        cmd.args(args);
        Invocation::new(cmd)
    }

    /// `narakim [--data-dir DATA] [--key-file KEY] ARGS` with a clean
    /// environment (no NARAKIM_* variables).
    fn custom(&self, data_dir: &Path, key_file: Option<&Path>, args: &[&str]) -> Invocation {
        let mut cmd = common::command();
        cmd.arg("--data-dir").arg(data_dir);
        if let Some(key) = key_file {
            cmd.arg("--key-file").arg(key);
        }
        cmd.args(args);
        Invocation::new(cmd)
    }

    /// The vault's data dir with another key file.
    fn with_key(&self, key_file: &Path, args: &[&str]) -> Invocation {
        self.custom(&self.v.data_dir, Some(key_file), args)
    }

    fn aux(&self, rel: &str) -> PathBuf {
        self.aux.path().join(rel)
    }

    /// Writes `bytes` to `aux/rel` with `mode`, creating parent dirs.
    fn aux_file(&self, rel: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let path = self.aux(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn aux_dir(&self, rel: &str) -> PathBuf {
        let path = self.aux(rel);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    fn key_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.v.key_file).unwrap()
    }

    /// The base64 key line of the vault's key file.
    fn key_material(&self) -> String {
        key_material(&self.key_bytes())
    }

    /// Inits a second, unrelated vault under `aux/other` and returns its key
    /// file.
    fn other_vault_key(&self) -> PathBuf {
        let data = self.aux("other/data");
        let key = self.aux("other/config/master.key");
        let mut cmd = common::command();
        cmd.arg("--data-dir")
            .arg(&data)
            .arg("--key-file")
            .arg(&key)
            .arg("init");
        common::run_command(cmd, None).ok();
        key
    }
}

fn key_material(key_file: &[u8]) -> String {
    String::from_utf8_lossy(key_file)
        .lines()
        .find_map(|l| l.strip_prefix("key: ").map(str::to_owned))
        .expect("key file has a `key:` line")
}

/// The base64 of `len` random bytes: a key no vault was made with.
fn random_key_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    random_fill(&mut bytes);
    BASE64.encode(bytes)
}

fn random_fill(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("read /dev/urandom");
}

/// One run of the binary: the command, what goes on stdin, and text that
/// must never appear in its output.
struct Invocation {
    cmd: Command,
    stdin: Option<Vec<u8>>,
    never_shown: Vec<String>,
}

impl Invocation {
    fn new(cmd: Command) -> Self {
        Invocation {
            cmd,
            stdin: None,
            never_shown: Vec::new(),
        }
    }

    /// Pipes `bytes` on stdin; every printable run of 6+ bytes of it must
    /// not be echoed.
    fn stdin(mut self, bytes: &[u8]) -> Self {
        for part in bytes.split(|b| !(0x20..0x7f).contains(b)) {
            if part.len() >= 6 {
                // Long runs (65 KiB of 'v') are guarded by their prefix.
                let part = &part[..part.len().min(64)];
                self.never_shown
                    .push(String::from_utf8(part.to_vec()).unwrap());
            }
        }
        self.stdin = Some(bytes.to_vec());
        self
    }

    fn env(mut self, key: &str, value: &str) -> Self {
        self.cmd.env(key, value);
        self
    }

    fn never_shows(mut self, text: &str) -> Self {
        self.never_shown.push(text.to_owned());
        self
    }

    fn run(self) -> (Run, Vec<String>) {
        (
            common::run_command(self.cmd, self.stdin.as_deref()),
            self.never_shown,
        )
    }
}

// ---------------------------------------------------------------------------
// "Unchanged": rows, database bytes, and every file under the fixture.
// ---------------------------------------------------------------------------

/// One file or directory: kind, permission bits, mtime and contents.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    mtime_ns: i128,
    bytes: Vec<u8>,
}

/// Every entry under `root`, by relative path.
fn tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_owned();
            let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
            let mode = meta.mode() & 0o7777;
            if meta.is_dir() {
                out.insert(
                    rel,
                    Entry {
                        kind: "dir",
                        mode,
                        mtime_ns: 0, // directory mtimes move with SQLite's -wal/-shm churn
                        bytes: Vec::new(),
                    },
                );
                walk(root, &path, out);
            } else {
                out.insert(
                    rel,
                    Entry {
                        kind: if meta.is_file() { "file" } else { "other" },
                        mode,
                        mtime_ns,
                        bytes: std::fs::read(&path).unwrap_or_default(),
                    },
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// `TestVault::dump()` of a byte-for-byte copy of the database files.
///
/// `dump()` opens the database read-only, and that connection leaves an
/// empty `vault.db-wal` and a 32 KiB `vault.db-shm` behind in the directory
/// it opened; dumping the real data dir would itself change the files this
/// suite compares (and hand the binary a different starting state).
fn dump_of_copy(f: &Fixture) -> String {
    let copy = TestVault::uninitialised();
    std::fs::create_dir_all(&copy.data_dir).unwrap();
    for path in narakim::vault::store::database_files(&f.v.data_dir) {
        if path.exists() {
            std::fs::copy(&path, copy.data_dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    copy.dump()
}

/// Everything a failed command must leave alone.
struct State {
    /// `TestVault::dump()`: meta, teams, bots, secrets, audit.
    dump: String,
    /// vault.db and its -wal/-shm/-journal (missing = empty).
    db_files: Vec<(PathBuf, Vec<u8>)>,
    /// Every file under the vault's root (data dir and key dir).
    vault_tree: BTreeMap<PathBuf, Entry>,
    /// Every file under the scratch dir (other vaults, other keys, junk).
    aux_tree: BTreeMap<PathBuf, Entry>,
}

impl State {
    fn of(f: &Fixture) -> Self {
        let vault_tree = tree(f.v.root.path());
        let aux_tree = tree(f.aux.path());
        let db_files = f.v.file_bytes();
        State {
            dump: dump_of_copy(f),
            db_files,
            vault_tree,
            aux_tree,
        }
    }

    /// What differs from `before`, one line each.
    fn diff(&self, before: &State) -> Vec<String> {
        let mut out = Vec::new();
        if self.dump != before.dump {
            let (a, b): (Vec<&str>, Vec<&str>) =
                (before.dump.lines().collect(), self.dump.lines().collect());
            let gone = a
                .iter()
                .filter(|l| !b.contains(l))
                .map(|l| format!("\n    - {l}"));
            let new = b
                .iter()
                .filter(|l| !a.contains(l))
                .map(|l| format!("\n    + {l}"));
            out.push(format!(
                "dump() changed:{}",
                gone.chain(new).collect::<String>()
            ));
        }
        if self.db_files != before.db_files {
            for ((path, a), (_, b)) in before.db_files.iter().zip(&self.db_files) {
                if a != b {
                    out.push(format!(
                        "{} changed ({} -> {} bytes)",
                        path.display(),
                        a.len(),
                        b.len()
                    ));
                }
            }
        }
        for (label, a, b) in [
            ("vault", &before.vault_tree, &self.vault_tree),
            ("scratch", &before.aux_tree, &self.aux_tree),
        ] {
            for (path, entry) in a {
                match b.get(path) {
                    None => out.push(format!("{label}: {} was removed", path.display())),
                    Some(after) if after != entry => out.push(format!(
                        "{label}: {} changed (mode {:o} -> {:o}, {} -> {} bytes, mtime {} -> {})",
                        path.display(),
                        entry.mode,
                        after.mode,
                        entry.bytes.len(),
                        after.bytes.len(),
                        entry.mtime_ns,
                        after.mtime_ns
                    )),
                    Some(_) => {}
                }
            }
            for path in b.keys().filter(|p| !a.contains_key(*p)) {
                out.push(format!("{label}: {} was created", path.display()));
            }
        }
        out
    }

    /// Between commands the WAL is absent or empty.
    fn wal_is_clean(&self) -> bool {
        self.db_files
            .iter()
            .filter(|(p, _)| p.to_string_lossy().ends_with("-wal"))
            .all(|(_, bytes)| bytes.is_empty())
    }
}

// ---------------------------------------------------------------------------
// The checks every bad input must pass.
// ---------------------------------------------------------------------------

/// How the binary should fail.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Exit {
    /// Our own error: exit code 1, exactly one `error:` line.
    Error,
    /// A clap usage error: exit code 2, `error:` first.
    Usage,
}

/// Runs `inv` on the fixture; returns the run and every way it fell short.
fn check(f: &Fixture, inv: Invocation, exit: Exit, expect: &[&str]) -> (Run, Vec<String>) {
    let before = State::of(f);
    let mut problems = Vec::new();
    if !before.wal_is_clean() {
        problems.push("setup left a non-empty WAL between commands".to_owned());
    }
    let key_material = f.key_material();
    let (run, never_shown) = inv.run();
    let after = State::of(f);

    let want_code = match exit {
        Exit::Error => 1,
        Exit::Usage => 2,
    };
    if run.code != want_code {
        problems.push(format!("exit code {} (want {want_code})", run.code));
    }
    if !run.stdout.is_empty() {
        problems.push(format!("stdout is not empty: {:?}", run.stdout));
    }
    if !run.stderr.starts_with("error: ") {
        problems.push("stderr does not start with `error: `".to_owned());
    }
    if exit == Exit::Error && run.stderr.lines().count() != 1 {
        problems.push("stderr is not exactly one line".to_owned());
    }
    for needle in expect {
        if !run.stderr.contains(needle) {
            problems.push(format!("stderr lacks {needle:?}"));
        }
    }
    let output = run.all_output();
    for secret in [TEAM_SECRET, BOT_SECRET, API_SECRET] {
        for enc in common::encodings(secret) {
            if output.contains(&*String::from_utf8_lossy(&enc)) {
                problems.push(format!("output shows a planted secret ({secret})"));
            }
        }
    }
    if output.contains(&key_material) {
        problems.push("output shows the vault's master key".to_owned());
    }
    for text in &never_shown {
        if output.contains(text.as_str()) {
            problems.push(format!("output echoes input it must hide: {text:?}"));
        }
    }
    if output.contains('\u{1b}') {
        problems.push("output contains a raw ESC control character".to_owned());
    }
    problems.extend(after.diff(&before));
    if !problems.is_empty() {
        problems.push(format!("code {}, stderr:\n{}", run.code, run.stderr));
    }
    (run, problems)
}

#[track_caller]
fn assert_clean((_, problems): (Run, Vec<String>)) {
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// The table.
// ---------------------------------------------------------------------------

struct Case {
    /// The kind of bad input.
    what: &'static str,
    /// Builds the command (and any files it needs) on a fresh fixture.
    invoke: fn(&Fixture) -> Invocation,
    exit: Exit,
    /// Phrases stderr must contain: what was wrong, and how to fix it.
    expect: &'static [&'static str],
}

const NAME_RULE: &str = "names are 1 to 128 characters of A-Z, 0-9 and _, starting with a letter";
const ARGV_REFUSAL: &[&str] = &[
    "secret values are never accepted on the command line",
    "other users can read a process's arguments",
    "pipe the value on stdin",
];
const ENTITY_RULE: &str = "use 1 to 64 characters of letters, digits, '.', '_' and '-'";

fn cases() -> Vec<Case> {
    use Exit::{Error, Usage};
    vec![
        // --- secret names ---------------------------------------------------
        Case {
            what: "secret name in lowercase",
            invoke: |f| {
                f.vault(&["secret", "set", "discord_token", "--bot", "greeter"])
                    .stdin(GOOD_VALUE)
            },
            exit: Error,
            expect: &[
                "invalid secret name \"discord_token\"",
                NAME_RULE,
                "for example DISCORD_BOT_TOKEN",
            ],
        },
        Case {
            what: "secret name with a leading digit",
            invoke: |f| {
                f.vault(&["secret", "set", "1TOKEN", "--bot", "greeter"])
                    .stdin(GOOD_VALUE)
            },
            exit: Error,
            expect: &["invalid secret name \"1TOKEN\"", NAME_RULE],
        },
        Case {
            what: "secret name containing '-'",
            invoke: |f| {
                f.vault(&["secret", "set", "DISCORD-TOKEN", "--team", "ops"])
                    .stdin(GOOD_VALUE)
            },
            exit: Error,
            expect: &["invalid secret name \"DISCORD-TOKEN\"", NAME_RULE],
        },
        Case {
            what: "secret name of 129 characters",
            invoke: |f| {
                let name = "A".repeat(129);
                f.vault(&["secret", "set", &name, "--bot", "greeter"])
                    .stdin(GOOD_VALUE)
                    .never_shows(&name)
            },
            exit: Error,
            expect: &["invalid secret name", "1 to 128 characters"],
        },
        Case {
            what: "empty secret name",
            invoke: |f| {
                f.vault(&["secret", "set", "", "--bot", "greeter"])
                    .stdin(GOOD_VALUE)
            },
            exit: Error,
            expect: &["invalid secret name \"\"", NAME_RULE],
        },
        Case {
            what: "NAME=value given as the secret name",
            invoke: |f| {
                f.vault(&[
                    "secret",
                    "set",
                    &format!("DISCORD_BOT_TOKEN={ARGV_VALUE}"),
                    "--bot",
                    "greeter",
                ])
                .stdin(GOOD_VALUE)
                .never_shows(ARGV_VALUE)
            },
            exit: Error,
            expect: &[
                "invalid secret name",
                "not shown: it may contain a value",
                NAME_RULE,
            ],
        },
        Case {
            what: "NAME: value given as the secret name",
            invoke: |f| {
                f.vault(&[
                    "secret",
                    "set",
                    &format!("TOKEN: {ARGV_VALUE}"),
                    "--team",
                    "ops",
                ])
                .stdin(GOOD_VALUE)
                .never_shows(ARGV_VALUE)
            },
            exit: Error,
            expect: &["not shown: it may contain a value", NAME_RULE],
        },
        Case {
            what: "secret name with a terminal escape sequence",
            invoke: |f| {
                f.vault(&["secret", "set", "TOKEN\u{1b}[2J", "--bot", "greeter"])
                    .stdin(GOOD_VALUE)
            },
            exit: Error,
            // Control characters are never echoed (nor is anything else that
            // does not look like a mistyped name).
            expect: &["invalid secret name \"(not shown", NAME_RULE],
        },
        Case {
            what: "invalid secret name in secret delete",
            invoke: |f| f.vault(&["secret", "delete", "discord_bot_token", "--bot", "greeter"]),
            exit: Error,
            expect: &["invalid secret name \"discord_bot_token\"", NAME_RULE],
        },
        // --- values on stdin -------------------------------------------------
        Case {
            what: "empty stdin",
            invoke: |f| {
                f.vault(&["secret", "set", "NEW_TOKEN", "--bot", "greeter"])
                    .stdin(b"")
            },
            exit: Error,
            expect: &[
                "stdin was empty",
                "printf %s \"$VALUE\" | narakim secret set NEW_TOKEN",
            ],
        },
        Case {
            what: "stdin closed (no value at all)",
            invoke: |f| f.vault(&["secret", "set", "NEW_TOKEN", "--team", "ops"]),
            exit: Error,
            expect: &["stdin was empty", "pipe the value in"],
        },
        Case {
            what: "stdin holding only a newline",
            invoke: |f| {
                f.vault(&["secret", "set", "NEW_TOKEN", "--bot", "greeter"])
                    .stdin(b"\n")
            },
            exit: Error,
            expect: &["the value is 0 bytes", "at least 8 bytes"],
        },
        Case {
            what: "value of 7 bytes",
            invoke: |f| {
                f.vault(&["secret", "set", "NEW_TOKEN", "--bot", "greeter"])
                    .stdin(b"Qz7#kP!")
            },
            exit: Error,
            expect: &[
                "the value is 7 bytes",
                "at least 8 bytes",
                "because a shorter value cannot be scrubbed from logs reliably",
            ],
        },
        Case {
            what: "value of 7 bytes plus the newline echo adds",
            invoke: |f| {
                f.vault(&["secret", "set", "NEW_TOKEN", "--team", "ops"])
                    .stdin(b"Qz7#kP!\n")
            },
            exit: Error,
            expect: &["the value is 7 bytes", "cannot be scrubbed"],
        },
        Case {
            what: "value of 65537 bytes",
            invoke: |f| {
                f.vault(&["secret", "set", "NEW_TOKEN", "--bot", "greeter"])
                    .stdin(&vec![b'v'; 65537])
            },
            exit: Error,
            expect: &["the value is 65537 bytes", "at most 65536 bytes (64 KiB)"],
        },
        Case {
            what: "value containing a NUL byte",
            invoke: |f| {
                f.vault(&["secret", "set", "NEW_TOKEN", "--bot", "greeter"])
                    .stdin(b"nul-left-part\0nul-right-part")
            },
            exit: Error,
            expect: &["contains a NUL byte", "without NUL bytes"],
        },
        Case {
            what: "value that is not UTF-8",
            invoke: |f| {
                f.vault(&["secret", "set", "NEW_TOKEN", "--team", "ops"])
                    .stdin(b"latin1-caf\xe9-value-part")
            },
            exit: Error,
            expect: &["not valid UTF-8", "must be UTF-8 text"],
        },
        // --- values on the command line ----------------------------------------
        Case {
            // `NAME VALUE --bot BOT` (value before the flags) is a known bug:
            // see `value_before_the_scope_flag_is_refused_as_argv`.
            what: "value as an extra positional argument after the flags",
            invoke: |f| {
                f.vault(&["secret", "set", "NEW_TOKEN", "--bot", "greeter", ARGV_VALUE])
                    .never_shows(ARGV_VALUE)
            },
            exit: Error,
            expect: ARGV_REFUSAL,
        },
        Case {
            what: "value after `--`",
            invoke: |f| {
                f.vault(&[
                    "secret",
                    "set",
                    "NEW_TOKEN",
                    "--team",
                    "ops",
                    "--",
                    ARGV_VALUE,
                ])
                .never_shows(ARGV_VALUE)
            },
            exit: Error,
            expect: ARGV_REFUSAL,
        },
        Case {
            what: "value as --value VALUE",
            invoke: |f| {
                f.vault(&[
                    "secret",
                    "set",
                    "NEW_TOKEN",
                    "--bot",
                    "greeter",
                    "--value",
                    ARGV_VALUE,
                ])
                .never_shows(ARGV_VALUE)
            },
            exit: Error,
            expect: ARGV_REFUSAL,
        },
        Case {
            what: "value as --value=VALUE, with a value on stdin too",
            invoke: |f| {
                f.vault(&[
                    "secret",
                    "set",
                    "NEW_TOKEN",
                    "--bot",
                    "greeter",
                    &format!("--value={ARGV_VALUE}"),
                ])
                .stdin(GOOD_VALUE)
                .never_shows(ARGV_VALUE)
            },
            exit: Error,
            expect: ARGV_REFUSAL,
        },
        // --- scope flags (clap) -----------------------------------------------
        Case {
            what: "secret set with both --bot and --team",
            invoke: |f| {
                f.vault(&[
                    "secret",
                    "set",
                    "NEW_TOKEN",
                    "--bot",
                    "greeter",
                    "--team",
                    "ops",
                ])
                .stdin(GOOD_VALUE)
            },
            exit: Usage,
            expect: &["'--bot <BOT>' cannot be used with '--team <TEAM>'"],
        },
        Case {
            what: "secret set with neither --bot nor --team",
            invoke: |f| f.vault(&["secret", "set", "NEW_TOKEN"]).stdin(GOOD_VALUE),
            exit: Usage,
            expect: &[
                "required arguments were not provided",
                "--bot <BOT>|--team <TEAM>",
            ],
        },
        Case {
            what: "secret list with neither --bot nor --team",
            invoke: |f| f.vault(&["secret", "list"]),
            exit: Usage,
            expect: &[
                "required arguments were not provided",
                "--bot <BOT>|--team <TEAM>",
            ],
        },
        Case {
            what: "audit list --limit that is not a number",
            invoke: |f| f.vault(&["audit", "list", "--limit", "ten"]),
            exit: Usage,
            expect: &["invalid value 'ten' for '--limit <N>'"],
        },
        Case {
            what: "unknown subcommand",
            invoke: |f| f.vault(&["secret", "show", "DISCORD_BOT_TOKEN", "--bot", "greeter"]),
            exit: Usage,
            expect: &["unrecognized subcommand 'show'"],
        },
        // --- unknown bots and teams ---------------------------------------------
        Case {
            what: "secret set for an unknown bot",
            invoke: |f| {
                f.vault(&["secret", "set", "NEW_TOKEN", "--bot", "nobot"])
                    .stdin(GOOD_VALUE)
            },
            exit: Error,
            expect: &["bot \"nobot\" does not exist", "narakim bot list"],
        },
        Case {
            what: "secret set for an unknown team",
            invoke: |f| {
                f.vault(&["secret", "set", "NEW_TOKEN", "--team", "noteam"])
                    .stdin(GOOD_VALUE)
            },
            exit: Error,
            expect: &["team \"noteam\" does not exist", "narakim team list"],
        },
        Case {
            what: "secret list for an unknown bot",
            invoke: |f| f.vault(&["secret", "list", "--bot", "nobot"]),
            exit: Error,
            expect: &["bot \"nobot\" does not exist", "narakim bot list"],
        },
        Case {
            what: "secret list for an unknown team",
            invoke: |f| f.vault(&["secret", "list", "--team", "noteam"]),
            exit: Error,
            expect: &["team \"noteam\" does not exist", "narakim team list"],
        },
        Case {
            what: "secret delete for an unknown bot",
            invoke: |f| f.vault(&["secret", "delete", "DISCORD_BOT_TOKEN", "--bot", "nobot"]),
            exit: Error,
            expect: &["bot \"nobot\" does not exist", "narakim bot list"],
        },
        Case {
            what: "secret delete for an unknown team",
            invoke: |f| f.vault(&["secret", "delete", "DISCORD_BOT_TOKEN", "--team", "noteam"]),
            exit: Error,
            expect: &["team \"noteam\" does not exist", "narakim team list"],
        },
        Case {
            what: "bot create in an unknown team",
            invoke: |f| f.vault(&["bot", "create", "helper", "--team", "noteam"]),
            exit: Error,
            expect: &[
                "team \"noteam\" does not exist",
                "narakim team create noteam",
            ],
        },
        Case {
            what: "bot delete of an unknown bot",
            invoke: |f| f.vault(&["bot", "delete", "nobot"]),
            exit: Error,
            expect: &["bot \"nobot\" does not exist", "narakim bot list"],
        },
        Case {
            what: "team delete of an unknown team",
            invoke: |f| f.vault(&["team", "delete", "noteam"]),
            exit: Error,
            expect: &["team \"noteam\" does not exist", "narakim team list"],
        },
        // --- secrets, teams and bots that do or do not exist --------------------
        Case {
            what: "deleting a secret that does not exist",
            invoke: |f| f.vault(&["secret", "delete", "NO_SUCH_SECRET", "--bot", "greeter"]),
            exit: Error,
            expect: &[
                "no secret NO_SUCH_SECRET in bot \"greeter\"",
                "narakim secret list --bot greeter",
            ],
        },
        Case {
            what: "deleting a team secret that exists only as a bot secret",
            invoke: |f| f.vault(&["secret", "delete", "OPENROUTER_API_KEY", "--team", "ops"]),
            exit: Error,
            expect: &[
                "no secret OPENROUTER_API_KEY in team \"ops\"",
                "narakim secret list --team ops",
            ],
        },
        Case {
            what: "creating a team that already exists",
            invoke: |f| f.vault(&["team", "create", "ops"]),
            exit: Error,
            expect: &["team \"ops\" already exists"],
        },
        Case {
            what: "creating a bot that already exists (in any team)",
            invoke: |f| f.vault(&["bot", "create", "greeter", "--team", "ops"]),
            exit: Error,
            expect: &["bot \"greeter\" already exists", "unique across the vault"],
        },
        Case {
            what: "bot name with a space",
            invoke: |f| f.vault(&["bot", "create", "my bot", "--team", "ops"]),
            exit: Error,
            expect: &["invalid bot name \"my bot\"", ENTITY_RULE],
        },
        Case {
            what: "bot name with a slash",
            invoke: |f| f.vault(&["bot", "create", "ops/greeter2", "--team", "ops"]),
            exit: Error,
            expect: &["invalid bot name \"ops/greeter2\"", ENTITY_RULE],
        },
        Case {
            what: "team name of 65 characters",
            invoke: |f| f.vault(&["team", "create", &"t".repeat(65)]),
            exit: Error,
            expect: &["invalid team name", ENTITY_RULE],
        },
        Case {
            what: "empty team name",
            invoke: |f| f.vault(&["team", "create", ""]),
            exit: Error,
            expect: &["invalid team name \"\"", ENTITY_RULE],
        },
        Case {
            what: "team name starting with '-'",
            invoke: |f| f.vault(&["team", "create", "--", "-ops"]),
            exit: Error,
            expect: &[
                "invalid team name \"-ops\"",
                "starting with a letter or digit",
            ],
        },
        Case {
            what: "deleting a team that still has bots",
            invoke: |f| f.vault(&["team", "delete", "ops"]),
            exit: Error,
            expect: &[
                "team \"ops\" still has 1 bot(s): greeter",
                "delete them first with `narakim bot delete NAME`",
            ],
        },
        // --- master key problems -------------------------------------------------
        Case {
            what: "key file with mode 0644",
            invoke: |f| {
                let key = f.aux_file("keys/master.key", &f.key_bytes(), 0o644);
                f.with_key(&key, &["team", "list"])
            },
            exit: Error,
            expect: &["accessible by group or others (mode 644)", "chmod 600"],
        },
        Case {
            what: "key file with mode 0640 on a secret set",
            invoke: |f| {
                let key = f.aux_file("keys/master.key", &f.key_bytes(), 0o640);
                f.with_key(&key, &["secret", "set", "NEW_TOKEN", "--bot", "greeter"])
                    .stdin(GOOD_VALUE)
            },
            exit: Error,
            expect: &["(mode 640)", "chmod 600"],
        },
        Case {
            what: "missing key file",
            invoke: |f| f.with_key(&f.aux("nowhere/master.key"), &["bot", "list"]),
            exit: Error,
            expect: &[
                "missing master key",
                "does not exist",
                "Restore the vault's key there",
                "--key-file",
            ],
        },
        Case {
            what: "key file holding text garbage",
            invoke: |f| {
                let key = f.aux_file("keys/master.key", b"this-is-no-key garbage\n", 0o600);
                f.with_key(&key, &["team", "list"])
                    .never_shows("this-is-no-key")
            },
            exit: Error,
            expect: &["master key file", "is malformed", "not valid base64"],
        },
        Case {
            what: "key file holding binary garbage",
            invoke: |f| {
                let key = f.aux_file("keys/master.key", b"\xff\xfe\x00binary-garbage", 0o600);
                f.with_key(&key, &["team", "list"])
            },
            exit: Error,
            expect: &["is malformed", "it is not text"],
        },
        Case {
            what: "empty key file",
            invoke: |f| {
                let key = f.aux_file("keys/master.key", b"", 0o600);
                f.with_key(&key, &["team", "list"])
            },
            exit: Error,
            expect: &["is malformed", "it is empty"],
        },
        Case {
            what: "key file path that is a directory",
            invoke: |f| {
                let key = f.aux_dir("keys/master.key");
                f.with_key(&key, &["team", "list"])
            },
            exit: Error,
            expect: &["is malformed", "not a regular file"],
        },
        Case {
            what: "key file whose key-id line does not match its key",
            invoke: |f| {
                let text = String::from_utf8(f.key_bytes()).unwrap();
                let damaged: String = text
                    .lines()
                    .map(|l| {
                        if l.starts_with("key-id:") {
                            "key-id: 0000000000000000".to_owned()
                        } else {
                            l.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let key = f.aux_file("keys/master.key", damaged.as_bytes(), 0o600);
                f.with_key(&key, &["team", "list"])
            },
            exit: Error,
            expect: &["is malformed", "edited or damaged"],
        },
        Case {
            what: "key file of another vault",
            invoke: |f| {
                let other = f.other_vault_key();
                let material = key_material(&std::fs::read(&other).unwrap());
                f.with_key(&other, &["secret", "list", "--bot", "greeter"])
                    .never_shows(&material)
            },
            exit: Error,
            expect: &["wrong vault", "point --key-file at that vault's key"],
        },
        Case {
            what: "a well-formed but wrong key (bare base64, mode 0600)",
            invoke: |f| {
                let material = random_key_b64(32);
                let key = f.aux_file("keys/master.key", format!("{material}\n").as_bytes(), 0o600);
                f.with_key(&key, &["secret", "set", "NEW_TOKEN", "--bot", "greeter"])
                    .stdin(GOOD_VALUE)
                    .never_shows(&material)
            },
            exit: Error,
            expect: &["wrong key", "is sealed with master key", "point --key-file"],
        },
        Case {
            what: "NARAKIM_MASTER_KEY that is not base64",
            invoke: |f| {
                f.custom(&f.v.data_dir, None, &["team", "list"])
                    .env("NARAKIM_MASTER_KEY", "not-base64-at-all!!")
                    .never_shows("not-base64-at-all")
            },
            exit: Error,
            expect: &["NARAKIM_MASTER_KEY is malformed", "not valid base64"],
        },
        Case {
            what: "NARAKIM_MASTER_KEY that decodes to 16 bytes",
            invoke: |f| {
                let material = random_key_b64(16);
                f.custom(&f.v.data_dir, None, &["team", "list"])
                    .env("NARAKIM_MASTER_KEY", &material)
                    .never_shows(&material)
            },
            exit: Error,
            expect: &[
                "NARAKIM_MASTER_KEY is malformed",
                "decodes to 16 bytes",
                "exactly 32 bytes",
            ],
        },
        Case {
            what: "NARAKIM_MASTER_KEY that is well-formed but wrong",
            invoke: |f| {
                let material = random_key_b64(32);
                f.custom(&f.v.data_dir, None, &["team", "create", "dev"])
                    .env("NARAKIM_MASTER_KEY", &material)
                    .never_shows(&material)
            },
            exit: Error,
            expect: &[
                "wrong key",
                "point --key-file (NARAKIM_KEY_FILE) or NARAKIM_MASTER_KEY",
            ],
        },
        Case {
            what: "both NARAKIM_MASTER_KEY and --key-file",
            invoke: |f| {
                let material = f.key_material();
                f.vault(&["team", "create", "dev"])
                    .env("NARAKIM_MASTER_KEY", &material)
            },
            exit: Error,
            expect: &[
                "both a key file",
                "and NARAKIM_MASTER_KEY are set",
                "unset one",
            ],
        },
        Case {
            what: "key file inside the data directory",
            invoke: |f| {
                let key = f.v.data_dir.join("master.key");
                std::fs::write(&key, f.key_bytes()).unwrap();
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
                f.with_key(&key, &["team", "create", "dev"])
            },
            exit: Error,
            expect: &[
                "is inside the data directory",
                "keep the key in another directory",
            ],
        },
        // --- data directories that hold no vault ----------------------------------
        Case {
            what: "--data-dir pointing at an empty directory",
            invoke: |f| {
                let dir = f.aux_dir("empty");
                f.custom(&dir, Some(&f.v.key_file), &["team", "list"])
            },
            exit: Error,
            expect: &["no vault at", "run `narakim init` to create one"],
        },
        Case {
            what: "--data-dir pointing at a directory that does not exist",
            invoke: |f| {
                f.custom(
                    &f.aux("absent"),
                    Some(&f.v.key_file),
                    &["team", "create", "dev"],
                )
            },
            exit: Error,
            expect: &["no vault at", "run `narakim init` to create one"],
        },
        Case {
            what: "vault.db that is SQLite but not a narakim vault",
            invoke: |f| {
                let dir = f.aux_dir("plain-sqlite");
                let conn = rusqlite::Connection::open(dir.join("vault.db")).unwrap();
                conn.execute_batch(
                    "CREATE TABLE notes(text TEXT); INSERT INTO notes VALUES ('hi');",
                )
                .unwrap();
                drop(conn);
                f.custom(&dir, Some(&f.v.key_file), &["team", "list"])
            },
            exit: Error,
            expect: &[
                "is not a narakim vault",
                "no narakim schema",
                "point --data-dir",
            ],
        },
        Case {
            what: "vault.db with a newer schema version",
            invoke: |f| {
                let dir = f.aux_dir("future");
                let conn = rusqlite::Connection::open(dir.join("vault.db")).unwrap();
                conn.execute_batch("CREATE TABLE meta(k); PRAGMA user_version = 99;")
                    .unwrap();
                drop(conn);
                f.custom(&dir, Some(&f.v.key_file), &["team", "list"])
            },
            exit: Error,
            expect: &["uses schema version 99", "upgrade narakim"],
        },
        // --- init on half a vault ------------------------------------------------
        Case {
            what: "init when the database exists but the key file is missing",
            invoke: |f| f.with_key(&f.aux("lost/master.key"), &["init"]),
            exit: Error,
            expect: &[
                "exists but its master key",
                "will not make a new key for an existing vault",
                "Restore the key",
            ],
        },
        Case {
            what: "init when the key file exists but the database does not",
            invoke: |f| f.custom(&f.aux("fresh-data"), Some(&f.v.key_file), &["init"]),
            exit: Error,
            expect: &[
                "a master key already exists at",
                "never overwrites a key",
                "choose another --key-file",
            ],
        },
        Case {
            what: "init on an existing vault with another vault's key",
            invoke: |f| {
                let other = f.other_vault_key();
                f.with_key(&other, &["init"])
            },
            exit: Error,
            expect: &["wrong vault"],
        },
        Case {
            what: "init with the key file inside the data directory",
            invoke: |f| {
                let data = f.aux("together/data");
                f.custom(&data, Some(&data.join("master.key")), &["init"])
            },
            exit: Error,
            expect: &[
                "is inside the data directory",
                "keep the key in another directory",
            ],
        },
    ]
}

/// Runs every row of the table, each on its own planted vault, a few at a
/// time, and reports every failing row at once.
#[test]
fn every_kind_of_bad_input_is_refused_clearly_and_changes_nothing() {
    let cases = cases();
    assert!(cases.len() >= 20, "at least 20 kinds of bad input");
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .min(8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let f = Fixture::planted();
                    let (_, problems) = check(&f, (case.invoke)(&f), case.exit, case.expect);
                    if !problems.is_empty() {
                        failures.lock().unwrap().push(format!(
                            "[{i}] {}:\n  {}",
                            case.what,
                            problems.join("\n  ")
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------
// Kinds whose setup differs.
// ---------------------------------------------------------------------------

/// The key a rotation replaced is refused as "previous", not just "wrong".
#[test]
fn previous_key_after_rotation_is_refused_by_name() {
    let f = Fixture::planted();
    let old = f.aux_file("old/master.key", &f.key_bytes(), 0o600);
    f.v.run(&["key", "rotate"]).ok();
    let material = key_material(&std::fs::read(&old).unwrap());
    let inv = f
        .with_key(&old, &["secret", "set", "NEW_TOKEN", "--bot", "greeter"])
        .stdin(GOOD_VALUE)
        .never_shows(&material);
    assert_clean(check(
        &f,
        inv,
        Exit::Error,
        &[
            "wrong key",
            "previous master key",
            "replaced by `narakim key rotate`",
            "use the current key",
        ],
    ));
}

/// Every bad input in a row against ONE vault: nothing accumulates (no
/// audit rows, no file growth) across many refusals.
#[test]
fn many_refusals_in_a_row_change_nothing() {
    let mut f = Fixture::planted();
    let before = State::of(&f);
    for case in cases() {
        // Each row gets a fresh scratch dir (rows reuse the same paths
        // there); the vault itself is shared by all rows.
        f.aux = tempfile::tempdir().unwrap();
        let (run, _) = (case.invoke)(&f).run();
        assert_ne!(run.code, 0, "{}: {run:?}", case.what);
    }
    f.aux = tempfile::tempdir().unwrap();
    let after = State::of(&f);
    let vault_only: Vec<String> = after
        .diff(&before)
        .into_iter()
        .filter(|d| !d.starts_with("scratch:"))
        // The "key inside the data dir" row plants a key file there itself.
        .filter(|d| !d.contains("master.key was created"))
        .collect();
    assert!(vault_only.is_empty(), "{}", vault_only.join("\n"));
}

/// A vault.db of junk bytes: refused, and the junk is left byte for byte,
/// with no -wal/-shm beside it.
#[test]
fn junk_database_is_refused_and_left_untouched() {
    let f = Fixture::planted();
    let dir = f.aux_dir("junk");
    let mut junk = vec![0u8; 8192];
    random_fill(&mut junk);
    junk[..16].copy_from_slice(b"not sqlite junk!");
    std::fs::write(dir.join("vault.db"), &junk).unwrap();
    let inv = f.custom(&dir, Some(&f.v.key_file), &["team", "list"]);
    // What holds today: non-zero exit, `error:`, nothing changed anywhere.
    assert_clean(check(
        &f,
        inv,
        Exit::Error,
        &["not a narakim vault", "not a SQLite database"],
    ));
    assert_eq!(std::fs::read(dir.join("vault.db")).unwrap(), junk);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("vault.db")]);
}

// ---------------------------------------------------------------------------
// Known defects: each test states the behaviour the issue asks for.
// ---------------------------------------------------------------------------

/// A junk vault.db should get the `NotAVault` message (what is wrong, and
/// "point --data-dir at a vault, or run `narakim init`"), not a raw SQLite
/// error repeated three times.
#[test]
fn junk_database_error_is_clear() {
    let f = Fixture::planted();
    let dir = f.aux_dir("junk");
    std::fs::write(
        dir.join("vault.db"),
        b"this is not a database, just junk bytes\n",
    )
    .unwrap();
    let inv = f.custom(&dir, Some(&f.v.key_file), &["team", "list"]);
    assert_clean(check(
        &f,
        inv,
        Exit::Error,
        &["is not a narakim vault", "point --data-dir"],
    ));
}

/// `secret set NAME VALUE --bot BOT`, the most natural way to get it
/// wrong: the hidden catch-all positional swallows `--bot BOT` too, so clap
/// says the scope flag is missing (exit 2) instead of the refusal that
/// explains why values are never taken from argv.
#[test]
fn value_before_the_scope_flag_is_refused_as_argv() {
    let f = Fixture::planted();
    let inv = f
        .vault(&["secret", "set", "NEW_TOKEN", ARGV_VALUE, "--bot", "greeter"])
        .never_shows(ARGV_VALUE);
    assert_clean(check(&f, inv, Exit::Error, ARGV_REFUSAL));
}

/// The error chain must not repeat itself (`{err:#}` prints a thiserror
/// variant that already shows its `#[source]`, then the source again).
#[test]
fn error_messages_do_not_repeat_their_cause() {
    let f = Fixture::planted();
    let dir = f.aux_dir("junk");
    std::fs::write(
        dir.join("vault.db"),
        b"this is not a database, just junk bytes\n",
    )
    .unwrap();
    let mut cmd = common::command();
    cmd.arg("--data-dir")
        .arg(&dir)
        .arg("--key-file")
        .arg(&f.v.key_file)
        .args(["team", "list"]);
    let run = common::run_command(cmd, None);
    let msg = run.stderr.trim_end();
    let parts: Vec<&str> = msg.split(": ").collect();
    for w in parts.windows(2) {
        assert_ne!(w[0], w[1], "repeated cause in {msg:?}");
    }
    assert_eq!(msg.matches("not a SQLite database").count(), 1, "{msg}");
}

/// `init` whose data dir cannot be created must not leave a brand-new key
/// file behind (a later `init` would then refuse with "never overwrites a
/// key" for a key that opens nothing).
#[test]
fn failed_init_leaves_no_key_behind() {
    let f = Fixture::planted();
    let not_a_dir = f.aux_file("plain-file", b"I am a file\n", 0o600);
    let key = f.aux("new-config/master.key");
    let inv = f.custom(&not_a_dir, Some(&key), &["init"]);
    let outcome = check(&f, inv, Exit::Error, &["plain-file"]);
    assert!(!key.exists(), "init failed but created {}", key.display());
    assert_clean(outcome);
}

/// A value pasted where the NAME goes (a typical token: lowercase and
/// dashes, no '=', ':' or space, under 128 bytes) is echoed in full.
#[test]
fn pasted_token_as_name_is_not_echoed() {
    let f = Fixture::planted();
    let token = "sk-or-v1-0123456789abcdef0123456789abcdef";
    let inv = f
        .vault(&["secret", "set", token, "--bot", "greeter"])
        .stdin(GOOD_VALUE)
        .never_shows(token);
    assert_clean(check(
        &f,
        inv,
        Exit::Error,
        &["invalid secret name", NAME_RULE],
    ));
}

/// A looked-up bot or team name with control characters is refused as an
/// invalid name, escaped, never echoed raw.
#[test]
fn unknown_names_are_escaped() {
    let f = Fixture::planted();
    let inv = f.vault(&["secret", "list", "--bot", "evil\u{1b}[2Jbot"]);
    assert_clean(check(
        &f,
        inv,
        Exit::Error,
        &["invalid bot name \"evil\\u{1b}[2Jbot\""],
    ));
}

/// A value far above the limit is reported with a made-up length (the
/// number of bytes read before giving up, 65539).
#[test]
fn oversized_value_length_is_not_misreported() {
    let f = Fixture::planted();
    let inv = f
        .vault(&["secret", "set", "NEW_TOKEN", "--bot", "greeter"])
        .stdin(&vec![b'w'; 1 << 20]);
    let (run, problems) = check(&f, inv, Exit::Error, &["at most 65536 bytes"]);
    assert!(
        !run.stderr.contains("is 65539 bytes"),
        "a 1 MiB value is reported as: {}",
        run.stderr
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
