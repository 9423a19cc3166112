//! What the vault's and the engine's SQLite connections share
//! ([`configure`]): how a connection waits for another's write lock, and
//! how its statements are planned.
//!
//! SQLite's own `busy_timeout` sleeps 1, 2, 5, 10, 15, 20, 25 … ms between
//! attempts. Under load, when the queue's synced commit (well under a
//! millisecond) holds the write lock, a worker's write would sleep 5 to
//! 25 ms past the moment it was free, holding the engine's store lock all
//! that time; accept latency showed it as a p99 of tens of milliseconds.
//! `wait_for_lock` retries after 20 µs, doubling to at most 1 ms, and
//! gives up after about [`GIVE_UP`] in all, as `busy_timeout` did.
//!
//! **Each statement is planned once.** By default SQLite re-plans a
//! statement when a value bound to it might change the best plan (a join,
//! a partial index, a `LIKE`): a cached statement was then parsed and
//! planned again on every run, and the API's token lookup spent a quarter
//! of `serve`'s CPU doing that. Every connection turns on the query
//! planner stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`), so a plan
//! is made at prepare time only; tests check that the stores' statements
//! are prepared once (`reprepared`, in test builds).

use std::time::Duration;

/// How long a connection waits for a lock in all before the statement
/// fails with `database is locked`.
pub const GIVE_UP: Duration = Duration::from_secs(10);

const FIRST: Duration = Duration::from_micros(20);
const LONGEST: Duration = Duration::from_millis(1);

/// Sets up a new connection of either store: `wait_for_lock` as its busy
/// handler, and plans that do not depend on bound values.
pub fn configure(conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(wait_for_lock))?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// SQLite's busy handler: called with how many times it was called for
/// this lock already; sleeps and returns `true` to try again.
fn wait_for_lock(attempt: i32) -> bool {
    let attempt = u32::try_from(attempt).unwrap_or(0);
    if waited_before(attempt) >= GIVE_UP {
        return false;
    }
    std::thread::sleep(delay(attempt));
    true
}

fn delay(attempt: u32) -> Duration {
    FIRST.saturating_mul(1 << attempt.min(16)).min(LONGEST)
}

/// The total of the delays of attempts `0..attempt`.
fn waited_before(attempt: u32) -> Duration {
    // Doubling reaches LONGEST within 6 attempts; after that each is 1 ms.
    let ramp: u32 = attempt.min(8);
    let ramp_total: Duration = (0..ramp).map(delay).sum();
    ramp_total + LONGEST * attempt.saturating_sub(ramp)
}

/// Every statement of `conn` that SQLite had to prepare again after its
/// first run, with how many times: a cached statement should never be.
#[cfg(test)]
pub(crate) fn reprepared(conn: &rusqlite::Connection) -> Vec<(String, i32)> {
    use rusqlite::ffi;
    let mut found = Vec::new();
    // SAFETY: the handle is `conn`'s, borrowed for this call; statements
    // are only walked and read (their SQL text is copied before the next
    // call), never stepped or finalised.
    unsafe {
        let db = conn.handle();
        let mut stmt = ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
        while !stmt.is_null() {
            let count = ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
            if count > 0 {
                let sql = std::ffi::CStr::from_ptr(ffi::sqlite3_sql(stmt));
                found.push((sql.to_string_lossy().into_owned(), count));
            }
            stmt = ffi::sqlite3_next_stmt(db, stmt);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_from_microseconds_to_a_millisecond() {
        assert_eq!(delay(0), Duration::from_micros(20));
        assert_eq!(delay(1), Duration::from_micros(40));
        assert_eq!(delay(5), Duration::from_micros(640));
        assert_eq!(delay(6), LONGEST);
        assert_eq!(delay(1000), LONGEST);
    }

    #[test]
    fn gives_up_after_about_ten_seconds() {
        let last = (0..).find(|&a| waited_before(a) >= GIVE_UP).unwrap();
        assert!((9_990..10_010).contains(&last), "{last}");
        assert_eq!(waited_before(3), Duration::from_micros(20 + 40 + 80));
    }

    #[test]
    fn a_held_lock_is_waited_for_and_a_released_one_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x INTEGER);")
            .unwrap();
        holder
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        // Timed from before the thread exists: on a loaded machine the
        // thread may only start after the lock is released.
        let started = std::time::Instant::now();
        let waiter = std::thread::spawn(move || {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            configure(&mut conn).unwrap();
            conn.execute("INSERT INTO t VALUES (2)", []).unwrap();
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(50));
        holder.execute_batch("COMMIT").unwrap();
        let waited = waiter.join().unwrap();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        let count: i64 = holder
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2);
    }
}
