//! Logging through the host's `log` import. Messages are scrubbed by the
//! host and recorded with the execution. Use the macros: [`trace!`](crate::trace),
//! [`debug!`](crate::debug), [`info!`](crate::info), [`warn!`](crate::warn),
//! [`error!`](crate::error).

pub use crate::bindings::narakim::extension0_2_0::log::Level;

/// Logs one message at `level`.
pub fn log(level: Level, message: &str) {
    crate::bindings::narakim::extension0_2_0::log::log(level, message);
}

/// Logs at `trace` level, `format!`-style.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => {
        $crate::log::log($crate::log::Level::Trace, &::std::format!($($arg)+))
    };
}

/// Logs at `debug` level, `format!`-style.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => {
        $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)+))
    };
}

/// Logs at `info` level, `format!`-style.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => {
        $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)+))
    };
}

/// Logs at `warn` level, `format!`-style.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => {
        $crate::log::log($crate::log::Level::Warn, &::std::format!($($arg)+))
    };
}

/// Logs at `error` level, `format!`-style.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => {
        $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)+))
    };
}
