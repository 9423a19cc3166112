//! TLS to PostgreSQL (`db::tls`), against the test server `.ci/services`
//! starts: TLS on, with a certificate for 127.0.0.1 from a CA of its own
//! (`NARAKIM_TEST_PG_CA`).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::services::TestDatabase;
use narakim::db::{Conn, PgPool};

/// The test database's URL without its query, and the CA's path.
fn parts(db: &TestDatabase) -> (String, String) {
    let base = db.url.split_once('?').map_or(db.url.as_str(), |(b, _)| b);
    let ca =
        std::env::var("NARAKIM_TEST_PG_CA").expect("NARAKIM_TEST_PG_CA with NARAKIM_TEST_PG_URL");
    (base.to_owned(), ca)
}

/// Whether the connection `url` makes is TLS (or why it failed).
fn uses_tls(url: &str) -> Result<bool, String> {
    let pool = PgPool::new(url).map_err(|e| e.to_string())?;
    Conn::Postgres(pool.conn())
        .query_one(
            "SELECT ssl::int::bigint FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            narakim::args![],
            |r| r.get::<i64>(0).map(|ssl| ssl == 1),
        )
        .map_err(|e| e.to_string())
}

#[test]
fn a_verified_connection_is_tls_with_channel_binding() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let (base, ca) = parts(&db);
    for mode in ["verify-full", "require", "verify-ca", "prefer"] {
        assert_eq!(
            uses_tls(&format!("{base}?sslmode={mode}&sslrootcert={ca}")),
            Ok(true),
            "{mode}"
        );
    }
    // SCRAM-SHA-256-PLUS: the password exchange is bound to the
    // certificate; a wrong binding hash would fail authentication.
    assert_eq!(
        uses_tls(&format!(
            "{base}?sslmode=verify-full&sslrootcert={ca}&channel_binding=require"
        )),
        Ok(true)
    );
    assert_eq!(uses_tls(&format!("{base}?sslmode=disable")), Ok(false));
}

#[test]
fn a_certificate_this_client_cannot_verify_is_refused() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let (base, ca) = parts(&db);
    // No CA given: the bundled roots do not know the test CA. libpq's
    // `require` would accept any certificate; ours verifies.
    for url in [base.clone(), format!("{base}?sslmode=require")] {
        let e = uses_tls(&url).unwrap_err();
        assert!(
            e.contains("TLS to PostgreSQL failed") && e.contains("sslrootcert="),
            "{url}: {e}"
        );
    }
    // The certificate is for 127.0.0.1, not localhost: verify-full checks
    // the name, verify-ca does not.
    let by_name = base.replacen("@127.0.0.1:", "@localhost:", 1);
    assert_ne!(by_name, base);
    let e = uses_tls(&format!(
        "{by_name}?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}"
    ))
    .unwrap_err();
    assert!(e.contains("not valid for name"), "{e}");
    assert_eq!(
        uses_tls(&format!(
            "{by_name}?hostaddr=127.0.0.1&sslmode=verify-ca&sslrootcert={ca}"
        )),
        Ok(true)
    );
}

#[test]
fn a_server_without_tls_is_refused_when_tls_is_required() {
    // Answers the client's SSLRequest with "N" (no TLS), as a server
    // without TLS (or an attacker stripping it) does.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 8];
        stream.read_exact(&mut request).unwrap();
        assert_eq!(&request[4..], &[0x04, 0xd2, 0x16, 0x2f], "an SSLRequest");
        stream.write_all(b"N").unwrap();
    });
    let e = uses_tls(&format!(
        "postgres://u:p@127.0.0.1:{port}/db?sslmode=require"
    ))
    .unwrap_err();
    assert!(e.contains("TLS"), "{e}");
    server.join().unwrap();
}

#[test]
fn the_cli_names_a_bad_tls_setting_and_changes_nothing() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let (base, _) = parts(&db);
    let password = base
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, p)| p.to_owned())
        .expect("a URL with a password");
    let tmp = tempfile::tempdir().unwrap();
    for (query, says) in [
        ("sslmode=allow", "sslmode=allow is not supported"),
        ("sslmode=require", "sslrootcert="),
        (
            "sslrootcert=/nonexistent/ca.pem",
            "sslrootcert /nonexistent/ca.pem",
        ),
        ("sslcert=/c.pem", "sslcert and sslkey go together"),
    ] {
        let mut cmd = common::command();
        cmd.arg("--data-dir")
            .arg(tmp.path().join("data"))
            .arg("init")
            .env("NARAKIM_DATABASE_URL", format!("{base}?{query}"));
        let run = common::run_command(cmd, None);
        let said = run.fails_with(says);
        assert!(!said.contains(&password), "{said}");
    }
    // Nothing was made in the database.
    let tables: i64 = db
        .conn()
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema()",
            narakim::args![],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}
