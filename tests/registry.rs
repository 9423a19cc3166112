//! The extension registry on real components (built from tests/guests):
//! install, list, show and load; idempotent reinstall; a changed component
//! under an installed version refused; a new version with its diff; files
//! that are not extensions refused; and no failed install leaving anything
//! behind.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::guests::component;
use narakim::engine::ExtensionCatalog;
use narakim::engine::registry::{InstallOutcome, InstallReport, Registry, RegistryError};
use narakim::runtime::{Limits, LoadError, Runtime};

struct Fixture {
    root: tempfile::TempDir,
    data_dir: PathBuf,
    runtime: Runtime,
    tokio: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    Fixture {
        runtime: Runtime::new(Limits::default(), Some(root.path().join("cache"))).unwrap(),
        tokio: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        data_dir,
        root,
    }
}

impl Fixture {
    fn registry(&self) -> Registry<'_> {
        Registry::open(&self.data_dir, &self.runtime).unwrap()
    }

    fn install(&self, path: &Path) -> Result<InstallReport, RegistryError> {
        self.tokio.block_on(self.registry().install(path))
    }

    /// A file in the temp dir (outside the data dir) with `bytes`.
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.root.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Everything the registry stores: the `extensions` rows and every file
    /// under `extensions/` with its bytes. Used to prove a failed install
    /// changed nothing.
    fn snapshot(&self) -> (Vec<String>, Vec<(PathBuf, Vec<u8>)>) {
        let conn = rusqlite::Connection::open_with_flags(
            self.data_dir.join("engine.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut stmt = conn
            .prepare("SELECT * FROM extensions ORDER BY id")
            .unwrap();
        let cols = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..cols)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| v.join("|"))
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let mut files = Vec::new();
        walk(&self.data_dir.join("extensions"), &mut files);
        files.sort();
        (rows, files)
    }
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.push((path.clone(), Vec::new()));
            walk(&path, out);
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
}

/// `bytes` with a custom section appended: the same component (same
/// describe(), same name and version) with a different hash.
fn with_custom_section(bytes: &[u8]) -> Vec<u8> {
    let name = b"narakim-test";
    let payload = b"different content";
    let size = 1 + name.len() + payload.len();
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push(size as u8); // LEB128, < 128
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(payload);
    out
}

#[test]
fn install_then_list_show_and_load() {
    let fx = fixture();
    let source = component("well-behaved");
    let report = fx.install(&source).unwrap();
    assert_eq!(report.outcome, InstallOutcome::Installed);
    let installed = &report.extension;
    assert_eq!(
        (installed.name.as_str(), installed.version.as_str()),
        ("well-behaved", "0.1.0")
    );
    assert_eq!(
        installed.path,
        fx.data_dir
            .join("extensions/well-behaved/0.1.0")
            .join(format!("{}.wasm", installed.sha256))
    );
    assert_eq!(
        std::fs::read(&installed.path).unwrap(),
        std::fs::read(&source).unwrap()
    );
    let mode = std::fs::metadata(&installed.path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let shown = report.to_string();
    assert!(
        shown.starts_with("installed well-behaved 0.1.0 (sha256 "),
        "{shown}"
    );

    let registry = fx.registry();
    assert_eq!(registry.list().unwrap(), vec![installed.clone()]);
    assert_eq!(&registry.show("well-behaved", None).unwrap(), installed);
    assert_eq!(
        &registry.show("well-behaved", Some("0.1.0")).unwrap(),
        installed
    );
    let desc = registry.find("well-behaved", None).unwrap();
    assert_eq!(desc.required_secrets.len(), 2);
    assert!(registry.find("nope", None).is_none());

    let err = registry.show("nope", None).unwrap_err();
    assert!(matches!(err, RegistryError::NotInstalled { .. }), "{err}");
    assert!(err.to_string().contains("narakim extension list"), "{err}");
    let err = registry.show("well-behaved", Some("9.9.9")).unwrap_err();
    assert!(
        matches!(err, RegistryError::VersionNotInstalled { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("installed: 0.1.0"), "{err}");

    let loaded = fx
        .tokio
        .block_on(registry.load("well-behaved", None))
        .unwrap();
    assert_eq!(loaded.sha256(), installed.sha256);
    assert_eq!(loaded.description(), &installed.description);
}

#[test]
fn reinstalling_the_same_component_changes_nothing() {
    let fx = fixture();
    let first = fx.install(&component("well-behaved")).unwrap();
    let before = fx.snapshot();
    let again = fx.install(&component("well-behaved")).unwrap();
    assert_eq!(
        again.outcome,
        InstallOutcome::AlreadyInstalled { repaired: false }
    );
    assert_eq!(again.extension, first.extension);
    assert!(again.to_string().contains("already installed"), "{again}");
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn a_modified_stored_component_is_refused_and_reinstall_restores_it() {
    let fx = fixture();
    let installed = fx.install(&component("well-behaved")).unwrap().extension;
    let original = std::fs::read(&installed.path).unwrap();
    std::fs::write(&installed.path, with_custom_section(&original)).unwrap();

    let err = fx
        .tokio
        .block_on(fx.registry().load("well-behaved", Some("0.1.0")))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Modified { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("the stored component of well-behaved 0.1.0 was modified"),
        "{err}"
    );

    let repaired = fx.install(&component("well-behaved")).unwrap();
    assert_eq!(
        repaired.outcome,
        InstallOutcome::AlreadyInstalled { repaired: true }
    );
    assert_eq!(std::fs::read(&installed.path).unwrap(), original);
    fx.tokio
        .block_on(fx.registry().load("well-behaved", None))
        .unwrap();
}

#[test]
fn same_version_with_different_content_is_refused_and_nothing_changes() {
    let fx = fixture();
    let installed = fx.install(&component("well-behaved")).unwrap().extension;
    let before = fx.snapshot();

    let changed = fx.file(
        "changed.wasm",
        &with_custom_section(&std::fs::read(component("well-behaved")).unwrap()),
    );
    let err = fx.install(&changed).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, RegistryError::Conflict { .. }), "{message}");
    assert!(
        message.starts_with("well-behaved 0.1.0 is already installed with different content"),
        "{message}"
    );
    assert!(message.contains(&installed.sha256), "{message}");
    assert!(
        message.contains("bump the version in its describe()"),
        "{message}"
    );
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn a_new_version_is_installed_beside_the_old_with_a_diff() {
    let fx = fixture();
    fx.install(&component("well-behaved")).unwrap();
    let report = fx.install(&component("well-behaved-v2")).unwrap();
    let InstallOutcome::NewVersion { previous, diff } = &report.outcome else {
        panic!("expected a new version, got {report:?}");
    };
    assert_eq!(previous, "0.1.0");
    assert_eq!(report.extension.version, "0.2.0");
    let text = diff.to_string();
    for line in [
        "+ required secret SIGNING_KEY (hosts: api2.example.test)",
        "~ required secret API_TOKEN hosts: api.example.test -> api2.example.test",
        "+ allowed host api2.example.test",
        "- allowed host api.example.test",
        "+ host field /callback_url",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert_eq!(text.lines().count(), 5, "{text}");
    let shown = report.to_string();
    assert!(shown.contains("changes since 0.1.0:"), "{shown}");
    assert!(shown.contains("  + required secret SIGNING_KEY"), "{shown}");

    let registry = fx.registry();
    let versions: Vec<_> = registry
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, ["0.2.0", "0.1.0"]);
    assert_eq!(
        registry.show("well-behaved", None).unwrap().version,
        "0.2.0"
    );
    assert_eq!(
        registry
            .find("well-behaved", Some("0.1.0"))
            .unwrap()
            .allowed_hosts,
        ["api.example.test"]
    );
    let v2 = fx
        .tokio
        .block_on(registry.load("well-behaved", None))
        .unwrap();
    assert_eq!(v2.description().version, "0.2.0");
    let v1 = fx
        .tokio
        .block_on(registry.load("well-behaved", Some("0.1.0")))
        .unwrap();
    assert_eq!(v1.description().version, "0.1.0");

    // Reinstalling the older version is still a no-op.
    let again = fx.install(&component("well-behaved")).unwrap();
    assert_eq!(
        again.outcome,
        InstallOutcome::AlreadyInstalled { repaired: false }
    );
}

#[test]
fn files_that_are_not_extensions_are_refused_and_nothing_is_stored() {
    let fx = fixture();
    let before = fx.snapshot_after_open();

    let err = fx.install(&component("not-an-extension")).unwrap_err();
    assert!(
        matches!(err, RegistryError::Load(LoadError::WrongWorld { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("is not a narakim extension"),
        "{err}"
    );

    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let junk = fx.file("junk.wasm", &random);
    let err = fx.install(&junk).unwrap_err();
    assert!(
        matches!(err, RegistryError::Load(LoadError::NotAComponent { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("junk.wasm is not a WebAssembly component"),
        "{err}"
    );

    let err = fx
        .install(&fx.root.path().join("missing.wasm"))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Read { .. }), "{err}");
    assert!(err.to_string().contains("missing.wasm"), "{err}");

    assert_eq!(fx.snapshot(), before);
    assert!(fx.registry().list().unwrap().is_empty());
    assert!(!fx.data_dir.join("extensions").exists());
}

#[test]
fn a_database_failure_leaves_no_file_behind() {
    let fx = fixture();
    fx.install(&component("well-behaved")).unwrap();
    let before = fx.snapshot();
    // Make the next insert fail inside SQLite.
    let conn = rusqlite::Connection::open(fx.data_dir.join("engine.db")).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER fail_install BEFORE INSERT ON extensions
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();
    drop(conn);

    let err = fx.install(&component("well-behaved-v2")).unwrap_err();
    assert!(matches!(err, RegistryError::Store(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("engine.db") && message.contains("injected failure"),
        "{message}"
    );
    assert_eq!(fx.snapshot(), before);
    assert!(!fx.data_dir.join("extensions/well-behaved/0.2.0").exists());
}

impl Fixture {
    /// The snapshot of an empty registry (opening creates `engine.db`).
    fn snapshot_after_open(&self) -> (Vec<String>, Vec<(PathBuf, Vec<u8>)>) {
        drop(self.registry());
        self.snapshot()
    }
}
