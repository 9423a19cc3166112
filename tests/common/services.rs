//! The services some tests need beyond SQLite: PostgreSQL and moto's KMS
//! stand-in, both started on loopback by `.ci/services` (which `.ci/run`
//! sources). Without them a test that needs one says it was skipped;
//! under `CI` that is a failure, so CI never passes by skipping.

use narakim::db::{Conn, PgPool};
use narakim::vault::kms::{AwsCredentials, KmsClient, KmsConfig};

/// Says `what` is missing: a skip on a developer's machine, a failure in CI.
#[track_caller]
pub fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is not available, and CI must run every test: `. .ci/services` starts it");
    }
    eprintln!("skipped: {what} is not available (`. .ci/services` starts it)");
}

/// A database of its own on the test PostgreSQL server, dropped after.
pub struct TestDatabase {
    admin: PgPool,
    name: String,
    pub url: String,
}

impl TestDatabase {
    /// `None` (after [`missing`]) when no server was started.
    pub fn create() -> Option<TestDatabase> {
        let Some(admin_url) = std::env::var("NARAKIM_TEST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            missing("PostgreSQL (NARAKIM_TEST_PG_URL)");
            return None;
        };
        let admin = PgPool::new(&admin_url).expect("the test server's URL");
        let name = format!("narakim_test_{}", random_hex(8));
        Conn::Postgres(admin.conn())
            .batch(&format!("CREATE DATABASE {name}"))
            .expect("creating a test database");
        // The same server and settings (TLS included), another database.
        let (address, query) = match admin_url.split_once('?') {
            Some((address, query)) => (address, format!("?{query}")),
            None => (admin_url.as_str(), String::new()),
        };
        let (base, _) = address.rsplit_once('/').expect("a URL with a database");
        Some(TestDatabase {
            url: format!("{base}/{name}{query}"),
            admin,
            name,
        })
    }

    /// A new connection to this database (a pool of its own).
    pub fn conn(&self) -> Conn {
        Conn::Postgres(PgPool::new(&self.url).unwrap().conn())
    }

    /// Every row of every table, as text: what someone with the database
    /// (or a dump of it) would see.
    pub fn dump(&self) -> String {
        let conn = self.conn();
        let tables: Vec<String> = conn
            .query_map(
                "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()",
                narakim::args![],
                |r| r.get(0),
            )
            .unwrap();
        let mut out = String::new();
        for table in tables {
            let rows: Vec<String> = conn
                .query_map(
                    &format!("SELECT t::text FROM {table} t"),
                    narakim::args![],
                    |r| r.get(0),
                )
                .unwrap();
            out.push_str(&format!("== {table}\n{}\n", rows.join("\n")));
        }
        out
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Conn::Postgres(self.admin.conn()).batch(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// moto's KMS, with a new symmetric key made for this test. `None` (after
/// [`missing`]) when no moto server was started.
pub fn kms() -> Option<KmsClient> {
    let Some(url) = std::env::var("NARAKIM_MOTO_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        missing("moto's KMS stand-in (NARAKIM_MOTO_URL)");
        return None;
    };
    let maker = kms_client(&url, "");
    let key_id = maker
        .create_key("narakim test")
        .expect("creating a KMS key");
    Some(kms_client(&url, &key_id))
}

/// A client for `key_id` at the moto server `url`.
pub fn kms_client(url: &str, key_id: &str) -> KmsClient {
    KmsClient::new(
        KmsConfig::new(
            "us-east-1".into(),
            key_id.into(),
            Some(url.into()),
            AwsCredentials::new("testing".into(), "testing".to_owned().into(), None),
        )
        .unwrap(),
    )
    .unwrap()
}

/// The moto server's URL, if one was started.
pub fn moto_url() -> Option<String> {
    std::env::var("NARAKIM_MOTO_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
