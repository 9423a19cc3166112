//! `narakim token create|list|revoke`: API tokens for `narakim serve`.

use anyhow::{Result, bail};
use clap::Subcommand;
use narakim::vault::Vault;
use narakim::vault::access::{Capability, TokenScope};
use narakim::vault::format_time;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Issue an API token and print it once (only a keyed digest is kept)
    Create {
        /// The team the token is scoped to
        #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
        team: Option<String>,
        /// Scope it to this bot of the team instead of the whole team
        #[arg(long, requires = "team")]
        bot: Option<String>,
        /// An admin token: every team and bot, and every capability
        #[arg(long)]
        admin: bool,
        /// What it may do, one or more of: secrets:write secrets:list bots:deploy bots:pause runs:start executions:read extensions:install audit:read
        #[arg(long = "can", value_name = "CAP", num_args = 1.., required_unless_present = "admin")]
        can: Vec<String>,
        /// Lifetime: a number and a unit (s, m, h, d, w), or `never`
        #[arg(long, value_name = "DUR", default_value = "90d")]
        expires: String,
    },
    /// List tokens: id, scope, capabilities, created, expires, last used (never the token)
    List,
    /// Revoke a token: requests that carry it fail from now on
    Revoke {
        /// The token's id (tok_…, from `token list`)
        id: String,
    },
}

pub fn run(vault: &mut Vault, cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create {
            team,
            bot,
            admin,
            can,
            expires,
        } => {
            let scope = match (admin, team, bot) {
                (true, _, _) => TokenScope::Admin,
                (false, Some(team), None) => TokenScope::Team(team),
                (false, Some(team), Some(bot)) => TokenScope::Bot { team, bot },
                (false, None, _) => bail!("give --team TEAM (and --bot BOT), or --admin"),
            };
            let capabilities = if admin && can.is_empty() {
                Capability::ALL.to_vec()
            } else {
                can.iter()
                    .flat_map(|c| c.split(','))
                    .filter(|c| !c.is_empty())
                    .map(|c| c.parse::<Capability>())
                    .collect::<Result<Vec<_>, _>>()?
            };
            let expires_at = expiry(&expires, now_ms())?;
            let (info, token) = vault.create_token(&scope, &capabilities, expires_at)?;
            // The token alone on stdout, so `$(narakim token create …)` works;
            // everything else on stderr.
            println!("{}", token.expose());
            eprintln!(
                "Created token {} for {} ({}), expires {}. It is shown only now: store it where it is needed.",
                info.id,
                info.scope,
                caps(&info.capabilities),
                info.expires_at.map_or_else(|| "never".into(), format_time),
            );
        }
        TokenCommand::List => {
            let tokens = vault.tokens()?;
            if tokens.is_empty() {
                println!(
                    "No tokens yet. Create one with `narakim token create --team TEAM --can CAP`."
                );
                return Ok(());
            }
            println!(
                "{:<20}  {:<32}  {:<20}  {:<20}  {:<20}  CAPABILITIES",
                "ID", "SCOPE", "CREATED", "EXPIRES", "LAST USED"
            );
            for t in tokens {
                println!(
                    "{:<20}  {:<32}  {:<20}  {:<20}  {:<20}  {}",
                    t.id,
                    t.scope.to_string(),
                    format_time(t.created_at),
                    t.expires_at.map_or_else(|| "never".into(), format_time),
                    t.last_used_at.map_or_else(|| "never".into(), format_time),
                    caps(&t.capabilities)
                );
            }
        }
        TokenCommand::Revoke { id } => {
            vault.revoke_token(&id)?;
            println!("Revoked token {id}.");
        }
    }
    Ok(())
}

fn caps(capabilities: &[Capability]) -> String {
    capabilities
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `DUR` (`90d`, `12h`, `never`) from `now`, in milliseconds since the epoch.
fn expiry(text: &str, now: i64) -> Result<Option<i64>> {
    if text == "never" {
        return Ok(None);
    }
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let seconds: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!(
            "--expires {text:?} is not a duration; give a number and a unit (s, m, h, d, w), for example 30d, or `never`"
        ),
    };
    let number: i64 = match number.parse() {
        Ok(n) if n > 0 => n,
        _ => bail!(
            "--expires {text:?} needs a whole number above 0 before its unit, for example 30d, or `never`"
        ),
    };
    match number
        .checked_mul(seconds * 1000)
        .and_then(|ms| now.checked_add(ms))
    {
        // Past year 9999 no timestamp prints; that is `never` in practice.
        Some(at) if at < 253_402_300_800_000 => Ok(Some(at)),
        _ => bail!(
            "--expires {text:?} is too far away; use `never` for a token that does not expire"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::expiry;

    #[test]
    fn durations() {
        assert_eq!(expiry("never", 0).unwrap(), None);
        assert_eq!(expiry("90s", 1_000).unwrap(), Some(91_000));
        assert_eq!(expiry("2w", 0).unwrap(), Some(2 * 604_800_000));
        for bad in ["", "d", "0d", "-1d", "1y", "1.5d", "10 d", "9999999999999w"] {
            assert!(expiry(bad, 0).is_err(), "{bad:?} was accepted");
        }
    }
}
