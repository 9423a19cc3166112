//! `narakim key rotate` killed with SIGKILL at every step of its staged
//! sequence (and at random moments) loses nothing: afterwards `key verify`
//! passes, every secret still opens with the key the vault says is current,
//! that key is the one in the key file, and the old key stays on disk as a
//! backup until the new one has been verified.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::TestVault;
use narakim::vault::{Scope, SecretName, SecretResolver, SecretValue, Vault};

const PAUSE_ENV: &str = "NARAKIM_TEST_PAUSE_AT";
/// Longest wait for a pause marker: a test never hangs on a lost process.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(30);
const SIGKILL: i32 = 9;

const TEAM: &str = "ops";
const BOTS: [&str; 2] = ["alpha", "beta"];

/// The pause points of `key rotate`, in the order it reaches them.
const POINTS: [&str; 7] = [
    "rotate:staged",
    "rotate:rewrapping",
    "rotate:before-commit",
    "rotate:committed",
    "rotate:backed-up",
    "rotate:installed",
    "rotate:verified",
];
/// The first point at which the database names the new key.
const FIRST_COMMITTED: &str = "rotate:committed";
/// Points after the commit and before verification: the old key must still
/// be on disk (in the key file or in its `.previous` backup).
const BACKUP_REQUIRED: [&str; 3] = ["rotate:committed", "rotate:backed-up", "rotate:installed"];

// ---------------------------------------------------------------------------
// Deterministic test data
// ---------------------------------------------------------------------------

/// xorshift64: deterministic, good enough to vary values and delays.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Never zero, and distinct seeds diverge at once.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// A distinct printable value of exactly `len` bytes: a unique tag, then
/// pseudo-random printable ASCII.
fn value_of_len(tag: &str, len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+/=!@#$%^&*";
    let mut rng = XorShift::new(seed);
    let mut v = String::with_capacity(len);
    v.push_str(&tag[..tag.len().min(len)]);
    while v.len() < len {
        v.push(ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char);
    }
    assert_eq!(v.len(), len);
    v
}

/// Who owns a planted secret.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Owner {
    Team,
    Bot(&'static str),
}

impl Owner {
    fn scope(self) -> Scope {
        match self {
            Owner::Team => Scope::Team(TEAM.to_owned()),
            Owner::Bot(bot) => Scope::Bot(bot.to_owned()),
        }
    }
}

/// Everything planted in a vault, in the order it was set.
struct Planted {
    rows: Vec<(Owner, String, String)>,
}

impl Planted {
    fn count(&self) -> usize {
        self.rows.len()
    }

    /// What `bot` must resolve: team secrets, overridden by its own secrets
    /// of the same name. The flag says whether the bot secret won.
    fn expected_for(&self, bot: &str) -> BTreeMap<&str, (&str, bool)> {
        let mut out = BTreeMap::new();
        for (owner, name, value) in &self.rows {
            if *owner == Owner::Team {
                out.insert(name.as_str(), (value.as_str(), false));
            }
        }
        for (owner, name, value) in &self.rows {
            if matches!(owner, Owner::Bot(b) if *b == bot) {
                out.insert(name.as_str(), (value.as_str(), true));
            }
        }
        out
    }
}

/// The realistic mix: one team with two bots, 22 secrets of distinct values
/// from exactly 8 bytes to exactly 64 KiB (one of them multi-byte UTF-8),
/// several bot secrets overriding team secrets of the same name.
fn mixed_rows() -> Vec<(Owner, String, String)> {
    let alpha = Owner::Bot("alpha");
    let beta = Owner::Bot("beta");
    let spec: &[(Owner, &str, usize)] = &[
        (Owner::Team, "DISCORD_BOT_TOKEN", 72),
        (Owner::Team, "OPENROUTER_API_KEY", 51),
        (Owner::Team, "DATABASE_URL", 97),
        (Owner::Team, "SHORT_PIN", 8),
        (Owner::Team, "TLS_BUNDLE", 64 * 1024),
        (Owner::Team, "WEBHOOK_SECRET", 33),
        (Owner::Team, "SENTRY_DSN", 120),
        (Owner::Team, "SIGNING_KEY", 4096),
        (alpha, "DISCORD_BOT_TOKEN", 70),
        (alpha, "OPENROUTER_API_KEY", 52),
        (alpha, "ALPHA_ONLY_TOKEN", 16),
        (alpha, "ALPHA_SSH_KEY", 3389),
        (alpha, "ALPHA_WEBHOOK", 45),
        (alpha, "ALPHA_LONG_TAIL", 20_000),
        (beta, "SHORT_PIN", 9),
        (beta, "WEBHOOK_SECRET", 31),
        (beta, "BETA_ONLY_TOKEN", 24),
        (beta, "BETA_CERT", 1500),
        (beta, "BETA_API_KEY", 40),
        (beta, "BETA_SECRET_10", 10),
    ];
    let mut rows: Vec<(Owner, String, String)> = spec
        .iter()
        .enumerate()
        .map(|(i, (owner, name, len))| {
            let tag = format!("v{i:02}-");
            (
                *owner,
                (*name).to_owned(),
                value_of_len(&tag, *len, i as u64 + 1),
            )
        })
        .collect();
    // Multi-byte UTF-8, and a value that only differs from another in its
    // last byte.
    rows.push((
        Owner::Team,
        "UNICODE_PASSPHRASE".to_owned(),
        "pässwörd-€-✓-ключ-鍵-🔑".to_owned(),
    ));
    let near = {
        let mut s = rows[0].2.clone();
        s.pop();
        s.push('#');
        s
    };
    rows.push((beta, "NEAR_DUPLICATE".to_owned(), near));

    let values: BTreeSet<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(values.len(), rows.len(), "fixture values are distinct");
    assert!(rows.iter().any(|r| r.2.len() == 64 * 1024));
    assert!(rows.iter().any(|r| r.2.len() == 8));
    rows
}

/// Stores `rows` through the library into a vault with the fixture's team
/// and bots.
fn plant(v: &TestVault, rows: Vec<(Owner, String, String)>) -> Planted {
    let mut vault = v.open();
    vault.create_team(TEAM).expect("create team");
    for bot in BOTS {
        vault.create_bot(bot, TEAM).expect("create bot");
    }
    for (owner, name, value) in &rows {
        vault
            .set_secret(
                &owner.scope(),
                &SecretName::new(name).expect("name"),
                &SecretValue::new(value.clone()).expect("value"),
            )
            .expect("set secret");
    }
    Planted { rows }
}

fn mixed_vault() -> (TestVault, Planted) {
    let v = TestVault::new();
    let planted = plant(&v, mixed_rows());
    (v, planted)
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// Every planted value, for every bot, through a fresh snapshot; and each
/// bot sees exactly the names it should. `only` restricts the names
/// resolved (the names checked are still all of them).
fn check_values(vault: &mut Vault, planted: &Planted, only: Option<&BTreeSet<&str>>, when: &str) {
    let mut failures = Vec::new();
    let mut resolved = 0;
    for bot in BOTS {
        let expected = planted.expected_for(bot);
        let snapshot = vault
            .snapshot_for_bot(bot)
            .unwrap_or_else(|e| panic!("{when}: snapshot for {bot}: {e}"));
        let names: BTreeMap<&str, Scope> = snapshot.names().collect();
        assert_eq!(
            names.keys().copied().collect::<Vec<_>>(),
            expected.keys().copied().collect::<Vec<_>>(),
            "{when}: bot {bot} sees other names than were planted"
        );
        for (name, (value, from_bot)) in &expected {
            let want_scope = if *from_bot {
                Scope::Bot(bot.to_owned())
            } else {
                Scope::Team(TEAM.to_owned())
            };
            if names[name] != want_scope {
                failures.push(format!("{name} for {bot}: resolves to {}", names[name]));
            }
            if only.is_some_and(|o| !o.contains(name)) {
                continue;
            }
            resolved += 1;
            match snapshot.resolve(name) {
                Ok(got) if got.matches(value.as_bytes()) => {}
                Ok(got) => failures.push(format!(
                    "{name} for {bot}: wrong value ({} bytes, expected {})",
                    got.len(),
                    value.len()
                )),
                Err(e) => failures.push(format!("{name} for {bot}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{when}: {} value(s) lost or wrong: {failures:#?}",
        failures.len()
    );
    assert!(resolved > 0, "{when}: nothing was checked");
}

/// The `key-id:` line of a key file, if the file exists.
fn key_id_in(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let id = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("key-id:"))
        .unwrap_or_else(|| panic!("{} has no key-id line", path.display()));
    Some(id.trim().to_owned())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn staged_file(v: &TestVault) -> PathBuf {
    with_suffix(&v.key_file, ".new")
}

fn backup_file(v: &TestVault) -> PathBuf {
    with_suffix(&v.key_file, ".previous")
}

/// File names in the key directory, sorted.
fn key_dir_entries(v: &TestVault) -> Vec<String> {
    let dir = v.key_file.parent().expect("key dir");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read key dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// The key id the database names as current, read without narakim (so
/// nothing is recovered or changed).
fn db_key_id(v: &TestVault) -> String {
    let conn = rusqlite::Connection::open_with_flags(
        v.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open db read-only");
    let id: Vec<u8> = conn
        .query_row("SELECT value FROM meta WHERE key = 'key_id'", [], |r| {
            r.get(0)
        })
        .expect("key_id in meta");
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The state of the vault after recovery: the key the vault reports is the
/// one in the key file, the key directory holds nothing else, `key verify`
/// (already run by the caller) agrees. Returns the current key id.
#[track_caller]
fn assert_settled(v: &TestVault, vault: &Vault, when: &str) -> String {
    let current = vault.key_id().to_string();
    assert_eq!(
        key_id_in(&v.key_file).as_deref(),
        Some(current.as_str()),
        "{when}: the key file's key-id line is not the vault's current key"
    );
    assert_eq!(
        key_dir_entries(v),
        ["master.key"],
        "{when}: a staged key or a backup was left beside the key file"
    );
    let mode = std::fs::metadata(&v.key_file)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "{when}: key file mode");
    assert_eq!(db_key_id(v), current, "{when}: database key id");
    assert!(
        vault.notes().is_empty(),
        "{when}: recovery should already be done: {:?}",
        vault.notes()
    );
    current
}

/// `narakim key verify` through the binary, as a new user would run it:
/// exit 0, every secret decrypts, stderr holds at most `note:` lines.
/// Returns the key id it names.
#[track_caller]
fn verify_via_binary(v: &TestVault, count: usize, when: &str) -> String {
    let run = v.run(&["key", "verify"]);
    assert_eq!(run.code, 0, "{when}: `key verify` failed: {run:#?}");
    let prefix = format!("All {count} secret(s) decrypt with master key ");
    let line = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{when}: `key verify` did not report {count} secrets: {run:#?}"));
    for l in run.stderr.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            l.starts_with("note:"),
            "{when}: unexpected stderr from `key verify`: {run:#?}"
        );
    }
    line.trim_end_matches('.').to_owned()
}

// ---------------------------------------------------------------------------
// Running and killing `key rotate`
// ---------------------------------------------------------------------------

/// Kills (SIGKILL) and reaps the child when dropped, so a failing test never
/// leaves a paused process behind.
struct Reaper(Child);

impl Reaper {
    fn kill(mut self) -> ExitStatus {
        let _ = self.0.kill();
        self.0.wait().expect("wait for narakim")
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(v: &TestVault, args: &[&str], pause_at: Option<&str>) -> Child {
    let mut cmd = v.command();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(point) = pause_at {
        cmd.env(PAUSE_ENV, point);
    }
    cmd.spawn().expect("spawn narakim")
}

/// Runs `key rotate` until it reports it is paused at `point`, then kills it
/// with SIGKILL. Panics if it does not get there within [`PAUSE_TIMEOUT`].
fn kill_at(v: &TestVault, point: &str) {
    kill_command_at(v, &["key", "rotate"], point);
}

/// Runs `narakim ARGS` until it reports it is paused at `point`, then kills
/// it with SIGKILL.
fn kill_command_at(v: &TestVault, args: &[&str], point: &str) {
    let mut cmd = v.command();
    cmd.args(args);
    kill_at_point(cmd, point);
}

/// Runs `cmd` until it reports it is paused at `point`, then kills it with
/// SIGKILL.
fn kill_at_point(mut cmd: std::process::Command, point: &str) {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut child = cmd
        .env(PAUSE_ENV, point)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn narakim");
    let stderr = child.stderr.take().expect("stderr pipe");
    let child = Reaper(child);
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let marker = format!("narakim: paused at {point}");
    let deadline = Instant::now() + PAUSE_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let hit = line.ends_with(&marker);
                seen.push(line);
                if hit {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "`narakim {args:?}` did not pause at {point} within {PAUSE_TIMEOUT:?}; stderr: {seen:#?}"
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.kill();
                panic!(
                    "`narakim {args:?}` ended ({status}) without pausing at {point}; stderr: {seen:#?}"
                )
            }
        }
    }
    let status = child.kill();
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "{point}: the process should have died of SIGKILL, got {status}"
    );
    reader.join().expect("stderr reader");
}

// ---------------------------------------------------------------------------
// One kill at each pause point
// ---------------------------------------------------------------------------

fn crash_at(point: &str) {
    let order = POINTS
        .iter()
        .position(|p| *p == point)
        .expect("known point");
    let committed = order >= POINTS.iter().position(|p| *p == FIRST_COMMITTED).unwrap();

    let (v, planted) = mixed_vault();
    let n = planted.count();
    let old = v.open().key_id().to_string();
    assert_eq!(key_id_in(&v.key_file).as_deref(), Some(old.as_str()));
    let old_key_text = std::fs::read(&v.key_file).expect("key file");

    kill_at(&v, point);

    // Right after the crash, before narakim runs again.
    let at_crash = format!("right after SIGKILL at {point}");
    let files: Vec<(PathBuf, Option<String>)> =
        [v.key_file.clone(), staged_file(&v), backup_file(&v)]
            .into_iter()
            .map(|p| {
                let id = key_id_in(&p);
                (p, id)
            })
            .collect();
    let db_key = db_key_id(&v);
    if committed {
        assert_ne!(
            db_key, old,
            "{at_crash}: the database should name the new key"
        );
    } else {
        assert_eq!(
            db_key, old,
            "{at_crash}: the database should still name the old key"
        );
    }
    assert!(
        files
            .iter()
            .any(|(_, id)| id.as_deref() == Some(db_key.as_str())),
        "{at_crash}: the key the database names ({db_key}) is on no file: {files:#?}"
    );
    // The new key generated by this rotation (staged, or already installed).
    let fresh: Vec<&str> = files
        .iter()
        .filter_map(|(_, id)| id.as_deref())
        .filter(|id| *id != old)
        .collect();
    assert_eq!(
        fresh.len(),
        1,
        "{at_crash}: expected exactly one new key on disk: {files:#?}"
    );
    let fresh = fresh[0].to_owned();
    if BACKUP_REQUIRED.contains(&point) {
        let holders: Vec<&Path> = files
            .iter()
            .filter(|(p, id)| {
                (*p == v.key_file || *p == backup_file(&v)) && id.as_deref() == Some(old.as_str())
            })
            .map(|(p, _)| p.as_path())
            .collect();
        assert!(
            !holders.is_empty(),
            "{at_crash}: the old key {old} is neither in master.key nor in master.key.previous \
             before the new key was verified: {files:#?}"
        );
    }

    // A new user runs `key verify`.
    let when = format!("after SIGKILL at {point}");
    let named = verify_via_binary(&v, n, &when);

    // Every value, through the library.
    let mut vault = v.open();
    check_values(&mut vault, &planted, None, &when);
    let current = assert_settled(&v, &vault, &when);
    assert_eq!(named, current, "{when}: `key verify` named another key");
    if committed {
        assert_ne!(
            current, old,
            "{when}: the rotation committed; the key must be new"
        );
        assert_eq!(
            current, fresh,
            "{when}: current key is not the one the rotation made"
        );
    } else {
        assert_eq!(
            current, old,
            "{when}: the rotation never committed; the key must be the old one"
        );
        assert_eq!(
            std::fs::read(&v.key_file).expect("key file"),
            old_key_text,
            "{when}: the key file changed although the rotation never committed"
        );
    }
    drop(vault);

    // A second rotation after recovery.
    let when = format!("second rotation after SIGKILL at {point}");
    let run = v.run(&["key", "rotate"]);
    assert_eq!(run.code, 0, "{when}: {run:#?}");
    assert!(
        run.stdout
            .contains(&format!("Rotated the master key: {current} -> ")),
        "{when}: {run:#?}"
    );
    assert!(run.stderr.trim().is_empty(), "{when}: {run:#?}");
    let named = verify_via_binary(&v, n, &when);
    let mut vault = v.open();
    check_values(&mut vault, &planted, None, &when);
    let after = assert_settled(&v, &vault, &when);
    assert_eq!(named, after);
    assert_ne!(after, current, "{when}: the key did not change");
    assert_ne!(after, old, "{when}: the key went back to the first one");
}

#[test]
fn sigkill_at_rotate_staged() {
    crash_at("rotate:staged");
}

#[test]
fn sigkill_at_rotate_rewrapping() {
    crash_at("rotate:rewrapping");
}

#[test]
fn sigkill_at_rotate_before_commit() {
    crash_at("rotate:before-commit");
}

#[test]
fn sigkill_at_rotate_committed() {
    crash_at("rotate:committed");
}

#[test]
fn sigkill_at_rotate_backed_up() {
    crash_at("rotate:backed-up");
}

#[test]
fn sigkill_at_rotate_installed() {
    crash_at("rotate:installed");
}

#[test]
fn sigkill_at_rotate_verified() {
    crash_at("rotate:verified");
}

/// The recovery itself, done by whichever command next opens the vault, can
/// be killed too: killed inside it twice, the next open still finishes the
/// rotation, keeps the old key until then, and loses nothing.
#[test]
fn sigkill_during_recovery_after_a_committed_rotation() {
    let (v, planted) = mixed_vault();
    let n = planted.count();
    let old = v.open().key_id().to_string();

    kill_at(&v, "rotate:committed");
    let new = db_key_id(&v);
    assert_ne!(new, old, "the rotation committed");
    assert_eq!(key_id_in(&staged_file(&v)).as_deref(), Some(new.as_str()));

    // The next command finishes the file swap while opening: kill it once
    // the backup is made, before the new key is moved in.
    kill_command_at(&v, &["key", "verify"], "rotate:backed-up");
    let when = "after SIGKILL of the recovery at rotate:backed-up";
    assert_eq!(db_key_id(&v), new, "{when}");
    assert_eq!(
        key_id_in(&staged_file(&v)).as_deref(),
        Some(new.as_str()),
        "{when}: the new key must still be staged"
    );
    assert!(
        [v.key_file.clone(), backup_file(&v)]
            .iter()
            .any(|p| key_id_in(p).as_deref() == Some(old.as_str())),
        "{when}: the old key is gone before the new one was verified: {:?}",
        key_dir_entries(&v)
    );

    // And again, once verified, just before the backup is shredded.
    kill_command_at(&v, &["secret", "list", "--bot", "alpha"], "rotate:verified");
    let when = "after SIGKILL of the recovery at rotate:verified";
    assert_eq!(
        key_id_in(&v.key_file).as_deref(),
        Some(new.as_str()),
        "{when}"
    );
    assert_eq!(
        key_id_in(&backup_file(&v)).as_deref(),
        Some(old.as_str()),
        "{when}: the backup must hold the old key"
    );
    assert!(!staged_file(&v).exists(), "{when}");

    let when = "after two killed recoveries";
    let named = verify_via_binary(&v, n, when);
    let mut vault = v.open();
    check_values(&mut vault, &planted, None, when);
    let current = assert_settled(&v, &vault, when);
    assert_eq!(current, new, "{when}");
    assert_eq!(named, new, "{when}");
}

// ---------------------------------------------------------------------------
// Kills at random moments
// ---------------------------------------------------------------------------

const RANDOM_SECRETS: usize = 3000;
const RANDOM_KILLS: u64 = 8;

#[test]
fn sigkill_at_random_moments_during_rotation() {
    let v = TestVault::new();
    // Alternate team and bot secrets, with distinct names.
    let rows: Vec<(Owner, String, String)> = (0..RANDOM_SECRETS)
        .map(|i| {
            let owner = match i % 3 {
                0 => Owner::Team,
                1 => Owner::Bot("alpha"),
                _ => Owner::Bot("beta"),
            };
            let len = 8 + (i * 7) % 41;
            (
                owner,
                format!("SECRET_{i:05}"),
                value_of_len(&format!("r{i}-"), len, 10_000 + i as u64),
            )
        })
        .collect();
    let setup = Instant::now();
    let planted = plant(&v, rows);
    let setup = setup.elapsed();
    let n = planted.count();

    // Sample: every 50th, plus the first and the last.
    let mut sample: BTreeSet<&str> = planted
        .rows
        .iter()
        .step_by(50)
        .map(|r| r.1.as_str())
        .collect();
    sample.insert(planted.rows[0].1.as_str());
    sample.insert(planted.rows[n - 1].1.as_str());

    // How long one uninterrupted rotation takes here, process start included.
    let mut current = v.open().key_id().to_string();
    let started = Instant::now();
    let run = v.run(&["key", "rotate"]);
    let one_rotation = started.elapsed();
    assert_eq!(run.code, 0, "{run:#?}");
    let named = verify_via_binary(&v, n, "after the timed rotation");
    assert_ne!(named, current, "the timed rotation did not change the key");
    current = named;
    let window_ms = (one_rotation.as_millis() as u64).max(1);

    let mut killed = 0;
    let mut rotated = 0;
    for round in 0..RANDOM_KILLS {
        let delay = Duration::from_millis(XorShift::new(round + 1).below(window_ms + 1));
        let child = Reaper(spawn(&v, &["key", "rotate"], None));
        std::thread::sleep(delay);
        let status = child.kill();
        if status.signal() == Some(SIGKILL) {
            killed += 1;
        } else {
            assert!(
                status.success(),
                "round {round}: `key rotate` failed on its own: {status}"
            );
        }

        let when = format!("round {round}: SIGKILL after {delay:?} ({status})");
        let named = verify_via_binary(&v, n, &when);
        let mut vault = v.open();
        let now = assert_settled(&v, &vault, &when);
        assert_eq!(named, now, "{when}");
        check_values(&mut vault, &planted, Some(&sample), &when);
        if now != current {
            rotated += 1;
        }
        current = now;
    }
    eprintln!(
        "setup {setup:?}; one rotation {one_rotation:?}; {killed} of {RANDOM_KILLS} runs killed, \
         {rotated} ended on a new key"
    );
    assert!(
        killed > 0,
        "no run was killed (one rotation takes {one_rotation:?}): the test proved nothing"
    );
}

// ---------------------------------------------------------------------------
// The master key in KMS, the vault on PostgreSQL
// ---------------------------------------------------------------------------

/// With the key in KMS a rotation is one PostgreSQL transaction (the
/// records re-wrapped, the new data key's blob stored): killed at any of
/// its points, the server rolls back what was not committed and releases
/// the write lock, so the vault opens under exactly one key, every secret
/// opens, no key file is ever written, and a second rotation goes through.
#[test]
fn sigkill_at_each_point_of_a_kms_rotation_on_postgres() {
    let Some(db) = common::services::TestDatabase::create() else {
        return;
    };
    let Some(kms) = common::services::kms().map(std::sync::Arc::new) else {
        return;
    };
    let moto = common::services::moto_url().expect("moto with its key");
    let root = tempfile::tempdir().unwrap();
    let command = || {
        let mut cmd = common::command();
        cmd.arg("--data-dir")
            .arg(root.path().join("data"))
            .args(["--kms-key-id", kms.key_id()])
            .args(["--kms-endpoint", &moto])
            .args(["--kms-region", "us-east-1"])
            .env("NARAKIM_DATABASE_URL", &db.url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing");
        cmd
    };
    let run = |args: &[&str], input: Option<&[u8]>| {
        let mut cmd = command();
        cmd.args(args);
        common::run_command(cmd, input)
    };
    run(&["init"], None).ok();
    run(&["team", "create", TEAM], None).ok();
    let mut planted = BTreeMap::new();
    for (i, bot) in BOTS.iter().enumerate() {
        run(&["bot", "create", bot, "--team", TEAM], None).ok();
        for n in 0..4 {
            let name = format!("KEY_{n}");
            let value = value_of_len(&format!("{bot}-{n}"), 24 + 8 * n, (i * 10 + n) as u64);
            run(
                &["secret", "set", &name, "--bot", bot],
                Some(value.as_bytes()),
            )
            .ok();
            planted.insert((bot.to_string(), name), value);
        }
    }
    let key_id = || -> Vec<u8> {
        db.conn()
            .query_one(
                "SELECT value FROM meta WHERE key = 'key_id'",
                narakim::args![],
                |r| r.get(0),
            )
            .unwrap()
    };
    for point in [
        "rotate:rewrapping",
        "rotate:before-commit",
        "rotate:committed",
    ] {
        let before = key_id();
        let mut cmd = command();
        cmd.args(["key", "rotate"]);
        kill_at_point(cmd, point);
        let after = key_id();
        if point == "rotate:committed" {
            assert_ne!(after, before, "{point}: the rotation committed");
        } else {
            assert_eq!(after, before, "{point}: nothing committed");
        }
        // Every secret opens under the key the database names, through KMS.
        let verified = run(&["key", "verify"], None);
        assert!(
            verified
                .ok()
                .contains(&format!("All {} secret(s) decrypt", planted.len())),
            "{point}: {verified:?}"
        );
        let config = narakim::vault::VaultConfig::new(
            root.path().join("data"),
            narakim::vault::KeySource::Kms(kms.clone()),
        )
        .with_postgres(&db.url)
        .unwrap();
        let mut vault = Vault::open(config).unwrap();
        for ((bot, name), value) in &planted {
            let snapshot = vault.snapshot_for_bot(bot).unwrap();
            assert!(
                snapshot.resolve(name).unwrap().matches(value.as_bytes()),
                "{point}: {bot}/{name}"
            );
        }
    }
    // The lock and the transaction died with the process: a rotation now
    // completes.
    run(&["key", "rotate"], None).ok();
    run(&["key", "verify"], None).ok();
    let files = common::files_under(root.path());
    assert!(
        files.iter().all(|f| !f
            .strip_prefix(root.path())
            .unwrap()
            .to_string_lossy()
            .contains("key")),
        "no key file is written: {files:?}"
    );
}
