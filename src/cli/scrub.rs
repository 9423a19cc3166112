//! `narakim scrub`: copy stdin to stdout with a bot's (or team's) secrets
//! replaced by `[REDACTED:NAME]`, raw or encoded. For cleaning logs from
//! other systems, and for trying the scrubber by hand.

use std::io::{self, Read, Write};

use anyhow::{Context, Result};
use narakim::redact::{ScrubWriter, Scrubber};
use narakim::vault::{Scope, Vault};
use zeroize::Zeroizing;

const READ_SIZE: usize = 64 * 1024;

pub fn run(vault: &mut Vault, scope: &Scope) -> Result<()> {
    let snapshot = vault.snapshot(scope)?;
    if snapshot.is_empty() {
        eprintln!("note: {scope} has no secrets; the output equals the input");
    }
    // Fails closed: scrubbing with some values missing would leak them.
    let scrubber = Scrubber::for_snapshot(&snapshot)?;

    let mut input = io::stdin().lock();
    let mut output = ScrubWriter::new(&scrubber, io::stdout().lock());
    // Raw input may hold secrets: wipe the buffer when done.
    let mut buf = Zeroizing::new(vec![0u8; READ_SIZE]);
    let copied = (|| -> io::Result<()> {
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            output.write_all(&buf[..n])?;
            // Release what is final now, so `tail -f log | narakim scrub` is live.
            output.flush()?;
        }
        output.finish().map(drop)
    })();
    match copied {
        // The reader went away (`| head`): not an error of ours.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("copying stdin to stdout"),
    }
}
