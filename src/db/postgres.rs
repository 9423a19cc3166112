//! PostgreSQL through tokio-postgres, with a deadpool connection pool.
//!
//! The stores are synchronous code (they run on blocking threads, the
//! CLI, and the queue's writer thread), so [`PgConn`] drives each
//! statement to completion on the calling thread; the connections' own
//! tasks and their sockets live on one small runtime of their own
//! ([`runtime`]), so a call works from any thread, inside a tokio runtime
//! or not.
//!
//! A connection that breaks (the server restarted, a proxy dropped it) is
//! thrown away: a statement outside a transaction is tried once more on a
//! new connection from the pool; inside one, the transaction fails (the
//! server rolled it back) and the next statement gets a new connection.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Timeouts};
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::{DbError, Value, to_postgres};

/// Most connections one process keeps open to the server.
const POOL_SIZE: usize = 16;
/// How long a statement waits for a connection, or for a new one to be
/// made, before it fails saying the database is unavailable.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// The runtime the pool's connections run on: one worker thread, shared by
/// every pool of the process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("narakim-pg")
            .enable_all()
            .build()
            .expect("the PostgreSQL runtime's thread could not start")
    })
}

/// Polls `future` to completion on this thread, inside [`runtime`]'s
/// context (so sockets and timers made while polling belong to it).
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let _context = runtime().enter();
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// A pool of connections to one PostgreSQL database. Cheap to clone.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
    config: Arc<tokio_postgres::Config>,
    tls: super::tls::MakeTls,
    shown: Arc<str>,
}

impl fmt::Debug for PgPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgPool").field("url", &self.shown).finish()
    }
}

impl PgPool {
    /// A pool for `url` (`postgres://user:password@host:port/database`).
    /// Connects lazily: a wrong password or a down server shows at the
    /// first statement.
    ///
    /// The URL's TLS settings (`sslmode`, `sslrootcert`, `sslcert`,
    /// `sslkey`) are read as [`super::tls`] describes; a CA or client
    /// certificate file that cannot be read fails here.
    pub fn new(url: &str) -> Result<PgPool, DbError> {
        let (rest, tls) = super::tls::split_url(url)?;
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| DbError::Unavailable(format!("the database URL is not valid: {e}")))?;
        config.ssl_mode(tls.ssl_mode());
        let tls = tls.connector()?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(CONNECT_WAIT),
                create: Some(CONNECT_WAIT),
                recycle: Some(CONNECT_WAIT),
            })
            .build()
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        Ok(PgPool {
            pool,
            config: Arc::new(config),
            tls,
            shown: shown_url(url).into(),
        })
    }

    /// The connection settings, for a connection outside the pool (the
    /// node's `LISTEN` connection).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS connector for [`config`](Self::config).
    pub fn tls(&self) -> super::tls::MakeTls {
        self.tls.clone()
    }

    /// The process's pool for `url`, made on first use: every store of a
    /// process opened on the same URL shares its connections.
    pub fn shared(url: &str) -> Result<PgPool, DbError> {
        static POOLS: std::sync::Mutex<Vec<(String, PgPool)>> = std::sync::Mutex::new(Vec::new());
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, pool)) = pools.iter().find(|(u, _)| u == url) {
            return Ok(pool.clone());
        }
        let pool = PgPool::new(url)?;
        pools.push((url.to_owned(), pool.clone()));
        Ok(pool)
    }

    /// The URL without its password, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A connection that checks a pooled connection out when it first
    /// needs one and keeps it until dropped.
    pub fn conn(&self) -> PgConn {
        PgConn {
            pool: self.clone(),
            client: RefCell::new(None),
            in_tx: Cell::new(false),
        }
    }

    fn checkout(&self) -> Result<Object, DbError> {
        block_on(self.pool.get()).map_err(|e| {
            DbError::Unavailable(format!(
                "{} ({}): {}",
                self.shown,
                "check that PostgreSQL is running and the URL's user, password and database are right",
                pool_error(&e)
            ))
        })
    }
}

fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

/// `url` with any password replaced by `***`.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a database URL)".to_owned();
    };
    match rest.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => format!("{scheme}://{rest}"),
    }
}

/// One connection of a [`PgPool`], used from one thread at a time.
pub struct PgConn {
    pool: PgPool,
    client: RefCell<Option<Object>>,
    in_tx: Cell<bool>,
}

impl fmt::Debug for PgConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConn")
            .field("url", &self.pool.shown)
            .field("in_transaction", &self.in_tx.get())
            .finish()
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        fn checked<T: ToSql>(
            v: T,
            ty: &Type,
            out: &mut bytes::BytesMut,
        ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
            v.to_sql_checked(ty, out)
        }
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) if *ty == Type::INT4 => checked(i32::try_from(v)?, ty, out),
            Value::Int(v) if *ty == Type::INT2 => checked(i16::try_from(v)?, ty, out),
            Value::Int(v) => checked(v, ty, out),
            Value::Text(v) => checked(v, ty, out),
            Value::Blob(v) => checked(v, ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl PgConn {
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `op` on this connection's client. A broken connection is
    /// dropped; outside a transaction `op` is tried again on another (as
    /// many times as the pool could hold broken ones).
    fn run<T>(
        &self,
        op: &dyn Fn(&Object) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, DbError> {
        for attempt in 0.. {
            if self.client.borrow().is_none() {
                let client = self.pool.checkout()?;
                *self.client.borrow_mut() = Some(client);
            }
            let result = {
                let client = self.client.borrow();
                op(client.as_ref().expect("checked out above"))
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if is_connection_error(&e) => {
                    self.client.borrow_mut().take();
                    // One broken connection usually means the server
                    // restarted or a proxy dropped them all: the idle ones
                    // are not trusted either.
                    self.pool.pool.retain(|_, _| false);
                    if self.in_tx.get() || attempt > POOL_SIZE {
                        self.in_tx.set(false);
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the loop returns")
    }

    pub(crate) fn query(
        &self,
        sql: &str,
        args: &[Value<'_>],
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        let sql = to_postgres(sql);
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        self.run(&|c| {
            block_on(async {
                let stmt = c.prepare_cached(&sql).await?;
                c.query(&stmt, &params).await
            })
        })
    }

    pub(crate) fn execute(&self, sql: &str, args: &[Value<'_>]) -> Result<u64, DbError> {
        let sql = to_postgres(sql);
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        self.run(&|c| {
            block_on(async {
                let stmt = c.prepare_cached(&sql).await?;
                c.execute(&stmt, &params).await
            })
        })
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<(), DbError> {
        self.run(&|c| block_on(c.batch_execute(sql)))
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.in_tx.get()
    }

    pub(crate) fn begin(&self) -> Result<(), DbError> {
        self.batch("BEGIN")?;
        self.in_tx.set(true);
        Ok(())
    }

    pub(crate) fn commit(&self) -> Result<(), DbError> {
        let done = self.batch("COMMIT");
        self.in_tx.set(false);
        done
    }

    pub(crate) fn rollback(&self) {
        if self.in_tx.get() && self.batch("ROLLBACK").is_err() {
            // Its state is unknown: never hand it back to the pool.
            if let Some(client) = self.client.borrow_mut().take() {
                let _ = Object::take(client);
            }
        }
        self.in_tx.set(false);
    }
}

/// The connection failed, not the statement.
pub(crate) fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        // Class 08 (connection exception) and 57P (the server is shutting
        // down or restarting) end the session.
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P")
        }
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// What the server said, without the detail line (which may quote a
/// row's values).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_url_has_no_password() {
        assert_eq!(
            shown_url("postgres://app:s3cret-pass@db.internal:5432/narakim"),
            "postgres://app:***@db.internal:5432/narakim"
        );
        assert_eq!(
            shown_url("postgres://127.0.0.1/narakim"),
            "postgres://127.0.0.1/narakim"
        );
        assert_eq!(shown_url("host=/tmp password=x"), "(a database URL)");
    }
}
