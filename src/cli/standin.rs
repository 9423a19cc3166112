//! `narakim standin discord|openrouter --bot BOT`: a loopback stand-in of
//! the API, accepting exactly the credentials the bot has in the vault, for
//! trying an extension with `extension run --upstream` without the network.

use std::time::Duration;

use anyhow::{Context, Result};
use narakim::standin::{Kind, Options, StandIn};
use narakim::vault::Vault;

/// Which API to stand in for.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Api {
    /// discord.com: messages and global application commands (/api/v10)
    Discord,
    /// openrouter.ai: chat completions (/api/v1)
    Openrouter,
}

pub fn run(vault: &mut Vault, api: Api, bot: &str, delay_ms: u64) -> Result<()> {
    let snapshot = vault.snapshot_for_bot(bot)?;
    // The stand-in compares what it receives with the bot's values, so it
    // holds them for as long as it runs: a local testing tool, never a server.
    let kind = match api {
        Api::Discord => Kind::discord_accepting(&snapshot),
        Api::Openrouter => Kind::openrouter_accepting(&snapshot),
    }
    .with_context(|| format!("the stand-in accepts bot {bot:?}'s own credentials"))?;
    let tokio = super::extension::tokio()?;
    let stand_in = {
        let _inside = tokio.enter();
        StandIn::start(
            kind,
            Options {
                delay: Duration::from_millis(delay_ms),
                ..Options::default()
            },
        )
        .context("starting the stand-in on 127.0.0.1")?
    };
    eprintln!(
        "{} stand-in on {} accepting bot {bot:?}'s credentials; run extensions with\n  --upstream {}\nCtrl-C stops it.",
        stand_in.host(),
        stand_in.base_url(),
        stand_in.upstream_arg()
    );
    tokio.block_on(async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            for request in stand_in.take_requests() {
                let status = request
                    .status
                    .map_or("no answer".to_owned(), |s| s.to_string());
                eprintln!("{} {} -> {status}", request.method, request.path);
            }
        }
    })
}
