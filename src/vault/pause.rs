//! Named points where a test can freeze the process to kill it with
//! SIGKILL, proving that a crash there loses nothing.
//!
//! Set `NARAKIM_TEST_PAUSE_AT=<point>`: on reaching that point the process
//! prints `narakim: paused at <point>` to stderr and sleeps until killed.
//! Unset (always, in production) it costs one environment lookup.

pub(crate) fn point(name: &str) {
    if std::env::var_os("NARAKIM_TEST_PAUSE_AT").is_some_and(|p| p == name) {
        eprintln!("narakim: paused at {name}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
