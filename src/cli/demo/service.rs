//! The demo's service part: it starts `narakim serve` on the demo's vault,
//! stores the triggers' keys and deploys two bots over the API, then sends
//! what the internet would: a GitHub `push` webhook signed with the bot's
//! webhook secret (again, as GitHub retries, and once forged), and a
//! Discord slash command signed with the application's key by the Discord
//! stand-in. It prints both executions as the API returns them. The
//! interaction token, like every stored secret, shows only as
//! `[REDACTED:…]`.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use narakim::standin::StandIn;
use narakim::vault::Vault;
use narakim::vault::access::{Capability, TokenScope};
use serde_json::{Value, json};

use super::http::{Answer, send};
use super::step;

/// The greeter bot's webhook signing secret, as GitHub's webhook settings
/// page would have it.
pub const GITHUB_WEBHOOK_SECRET: &str = "gh-webhook-demo-secret-0123456789abcdef";

/// The greeter, now started by a GitHub push: OpenRouter announces it and
/// Discord posts the announcement.
const GREETER: &str = r#"{
  "name": "greeter",
  "description": "Announce every push to the repository on Discord",
  "nodes": [
    {
      "id": "write",
      "extension": "openrouter-chat",
      "config": {
        "model": "openai/gpt-4o-mini",
        "system": "You announce a git push in one short Discord message.",
        "prompt": "{{trigger.body.pusher.name}} pushed '{{trigger.body.head_commit.message}}' to {{trigger.body.repository.full_name}}.",
        "debug": true
      }
    },
    {
      "id": "post",
      "extension": "discord-send-message",
      "depends_on": ["write"],
      "config": {"channel_id": "876543210987654321", "content": "{{nodes.write.output.reply}}"}
    }
  ],
  "triggers": [
    {"id": "push", "kind": "webhook", "verify": {"scheme": "github", "secret": "GITHUB_WEBHOOK_SECRET"}}
  ]
}"#;

/// A second bot that answers `/ask question:…` on Discord: OpenRouter
/// writes the answer and `discord-followup` edits the deferred response
/// with it, using the interaction token the trigger hands this run only.
/// `debug` logs the follow-up's URL, which holds the token: the execution
/// record shows what is left of it.
const HELPER: &str = r#"{
  "name": "helper",
  "description": "Answer /ask on Discord",
  "nodes": [
    {
      "id": "think",
      "extension": "openrouter-chat",
      "config": {
        "model": "openai/gpt-4o-mini",
        "system": "You answer in one short sentence.",
        "prompt": "{{trigger.interaction.member.user.username}} asks: {{trigger.interaction.data.options.0.value}}"
      }
    },
    {
      "id": "answer",
      "extension": "discord-followup",
      "depends_on": ["think"],
      "config": {"content": "{{nodes.think.output.reply}}", "debug": true}
    }
  ],
  "triggers": [{"id": "ask", "kind": "discord-interactions"}]
}"#;

/// A GitHub `push` event, trimmed to what the graph reads.
const PUSH: &str = r#"{"ref":"refs/heads/main","repository":{"full_name":"narakim/greeter"},"pusher":{"name":"ada"},"head_commit":{"id":"4bed4290c0ffee","message":"Welcome new members"}}"#;

/// What the service part leaves for the demo's last checks.
pub struct Outcome {
    /// Values that must appear in no database file: the webhook secret and
    /// the interaction token.
    pub planted: Vec<String>,
}

/// Runs the service part on the demo's vault. `secrets` are every value the
/// demo stored, which no answer and no log line may contain.
pub fn run(
    vault: &mut Vault,
    flags: &str,
    exe_args: &[String],
    root: &Path,
    discord: &StandIn,
    openrouter: &StandIn,
    secrets: &[&str],
) -> Result<Outcome> {
    println!(
        "\n# The same engine as a service: `narakim serve`, its API, a signed GitHub webhook and a Discord slash command"
    );
    let caps = [
        Capability::SecretsWrite,
        Capability::SecretsList,
        Capability::BotsDeploy,
        Capability::RunsStart,
        Capability::ExecutionsRead,
    ];
    step(
        "TOKEN=$(narakim token create --team ops --can secrets:write secrets:list bots:deploy runs:start executions:read --expires 1h)",
    );
    let expires = narakim::trigger::now_ms() + 3_600_000;
    let (info, token) =
        vault.create_token(&TokenScope::Team("ops".into()), &caps, Some(expires))?;
    println!(
        "  token {} for team ops; shown once (only a keyed digest is kept)",
        info.id
    );
    let bearer = format!("Bearer {}", token.expose());

    let upstreams = [discord.upstream_arg(), openrouter.upstream_arg()];
    step(&format!(
        "narakim {flags} serve --listen 127.0.0.1:0 --upstream {} --upstream {} &",
        upstreams[0], upstreams[1]
    ));
    let server = Serve::start(exe_args, &upstreams)?;
    println!("  narakim serve: listening on http://{}", server.addr);
    let api = Api {
        addr: server.addr,
        bearer,
    };

    println!(
        "\n# Store the triggers' keys and deploy over the API (values go in, never come out):"
    );
    api.put_secret(
        "/api/v1/teams/ops/bots/greeter/secrets/GITHUB_WEBHOOK_SECRET",
        GITHUB_WEBHOOK_SECRET,
    )?;
    api.call_json(
        "POST",
        "/api/v1/teams/ops/bots",
        json!({"name": "helper"}),
        201,
    )?;
    // The Discord application's public key is shared by the team's bots.
    api.put_secret(
        "/api/v1/teams/ops/secrets/DISCORD_PUBLIC_KEY",
        &narakim::standin::discord::test_public_key(),
    )?;
    api.put_secret(
        "/api/v1/teams/ops/bots/helper/secrets/OPENROUTER_API_KEY",
        secrets_value(secrets, "sk-or-v1-")?,
    )?;
    let push_path = api.deploy(root, "greeter", GREETER, "push")?;
    let ask_path = api.deploy(root, "helper", HELPER, "ask")?;

    println!(
        "\n# GitHub delivers a push event, signed with the webhook secret (X-Hub-Signature-256, an HMAC of the raw body):"
    );
    let headers = github_push(
        GITHUB_WEBHOOK_SECRET.as_bytes(),
        "7a3f0c1e-5b2d-11f0-8d4e-0242ac120002",
    )?;
    let accepted = api.deliver(&push_path, &headers, PUSH.as_bytes(), 202)?;
    let push_execution = accepted["execution_id"]
        .as_str()
        .context("the webhook's answer has no execution_id")?
        .to_owned();
    println!("\n# GitHub retries the same delivery: answered with the same run, not run twice:");
    let again = api.deliver(&push_path, &headers, PUSH.as_bytes(), 202)?;
    if again["execution_id"] != accepted["execution_id"] || again["replayed"] != true {
        bail!("a repeated delivery was not recognised: {again}");
    }
    println!("\n# A forgery: the same body signed with another key is refused, and nothing runs:");
    let forged = github_push(
        b"a-guess-at-the-secret",
        "7a3f0c1e-5b2d-11f0-8d4e-0242ac120003",
    )?;
    api.deliver(&push_path, &forged, PUSH.as_bytes(), 401)?;

    println!(
        "\n# A Discord user types /ask; Discord signs the interaction (Ed25519, the stand-in's test key pair) and posts it:"
    );
    let interaction = discord
        .slash_command(
            "ask",
            json!([{"name": "question", "type": 3, "value": "What does narakim keep out of its logs?"}]),
        )
        .context("the Discord stand-in makes the interaction")?;
    let started = Instant::now();
    let ack = api.deliver(&ask_path, &interaction.headers, &interaction.body, 200)?;
    let took = started.elapsed();
    if ack != json!({"type": 5}) {
        bail!("the interaction was not acknowledged with a deferred response: {ack}");
    }
    println!(
        "  acknowledged in {:.1} ms (Discord's deadline: 3 s), after the run was durably queued",
        took.as_secs_f64() * 1000.0
    );

    println!("\n# The resulting executions, as the API returns them:");
    let helper_execution = api.only_execution("helper")?;
    for (bot, id) in [("greeter", &push_execution), ("helper", &helper_execution)] {
        let run = api.finished(bot, id)?;
        let text = serde_json::to_string_pretty(&run)?;
        for value in secrets
            .iter()
            .copied()
            .chain([GITHUB_WEBHOOK_SECRET, interaction.token.as_str()])
        {
            if text.contains(value) {
                bail!("an execution record holds a secret value");
            }
        }
        for line in text.lines() {
            println!("  {line}");
        }
        if run["status"] != "succeeded" {
            bail!("the demo's service execution {} failed", run["id"]);
        }
    }
    println!(
        "  (the helper's nodes read DISCORD_INTERACTION_TOKEN through the secrets interface; the stored trigger has no `token` field)"
    );
    let followup = discord
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .context("the follow-up never reached the Discord stand-in")?;
    println!(
        "  the follow-up reached the Discord stand-in: PATCH {}, which holds the real interaction token: {}",
        followup
            .path
            .replace(&interaction.token, "{interaction_token}"),
        followup.path.contains(&interaction.token)
    );

    step("kill %1   # SIGTERM: drain, then stop");
    let log = server.stop()?;
    let leaked = secrets
        .iter()
        .copied()
        .chain([GITHUB_WEBHOOK_SECRET, interaction.token.as_str()])
        .filter(|v| log.contains(v))
        .count();
    println!(
        "  stopped; its log has {} line(s), {leaked} with a secret value or the interaction token",
        log.lines().count()
    );
    if leaked > 0 {
        bail!("the server's log holds a secret value");
    }
    Ok(Outcome {
        planted: vec![GITHUB_WEBHOOK_SECRET.to_owned(), interaction.token],
    })
}

/// GitHub's headers for [`PUSH`] as delivery `delivery`, signed with `key`.
fn github_push(key: &[u8], delivery: &str) -> Result<Vec<(String, String)>> {
    let signed = narakim::trigger::verify::github::sign(key, Some(delivery), PUSH.as_bytes())?;
    let mut headers: Vec<(String, String)> = signed
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    headers.push(("X-GitHub-Event".into(), "push".into()));
    Ok(headers)
}

fn secrets_value<'a>(secrets: &[&'a str], prefix: &str) -> Result<&'a str> {
    secrets
        .iter()
        .copied()
        .find(|v| v.starts_with(prefix))
        .with_context(|| format!("no demo secret starts with {prefix}"))
}

/// `narakim serve` as a child process, stopped (SIGTERM) or killed on drop.
struct Serve {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Serve {
    fn start(exe_args: &[String], upstreams: &[String]) -> Result<Serve> {
        let exe = std::env::current_exe().context("finding the narakim binary")?;
        let mut cmd = Command::new(exe);
        cmd.args(exe_args)
            .args(["serve", "--listen", "127.0.0.1:0", "--drain-seconds", "10"]);
        for upstream in upstreams {
            cmd.args(["--upstream", upstream]);
        }
        let mut child = cmd
            .env_remove("NARAKIM_TEST_CLOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting narakim serve")?;
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(mut stderr) = child.stderr.take() {
            let sink = log.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut log) = sink.lock() {
                        log.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            });
        }
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        let mut serve = Serve {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        match line.trim().rsplit("://").next().map(str::parse) {
            Some(Ok(addr)) => serve.addr = addr,
            _ => {
                let _ = serve.child.wait();
                bail!("narakim serve did not start: {}", serve.log_text());
            }
        }
        Ok(serve)
    }

    fn log_text(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// SIGTERM, then its log once it has exited.
    fn stop(mut self) -> Result<String> {
        // SAFETY: signalling our own child, which has not been waited for.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait()?;
        // The stderr reader ends at EOF, just after the exit.
        std::thread::sleep(Duration::from_millis(100));
        if !status.success() {
            bail!("narakim serve exited with {status}: {}", self.log_text());
        }
        Ok(self.log_text())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API, called as a bot owner would with `curl`.
struct Api {
    addr: SocketAddr,
    bearer: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Answer> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut headers = vec![("Authorization", self.bearer.as_str())];
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        send(self.addr, method, path, &headers, body.as_bytes())
    }

    /// `method path` with a JSON body, printed as the `curl` it is; fails
    /// unless the answer is `expect`.
    fn call_json(&self, method: &str, path: &str, body: Value, expect: u16) -> Result<Value> {
        step(&format!(
            "curl -X {method} http://$SERVER{path} -H \"Authorization: Bearer $TOKEN\" -d '{body}'"
        ));
        let answer = self.call(method, path, Some(&body))?;
        println!("  {} {}", answer.status, answer.text());
        if answer.status != expect {
            bail!("expected {expect} from {method} {path}");
        }
        answer.json()
    }

    /// Stores a secret; the command shows the value as a variable, as an
    /// operator would pass it.
    fn put_secret(&self, path: &str, value: &str) -> Result<()> {
        step(&format!(
            "curl -X PUT http://$SERVER{path} -H \"Authorization: Bearer $TOKEN\" -d \"{{\\\"value\\\": \\\"$VALUE\\\"}}\""
        ));
        let answer = self.call("PUT", path, Some(&json!({ "value": value })))?;
        println!("  {} {}", answer.status, answer.text());
        if answer.status != 201 {
            bail!("storing a secret at {path} answered {}", answer.status);
        }
        Ok(())
    }

    /// Deploys `graph` (written to `root` first, for the reader) and returns
    /// the path of its trigger `trigger`, as `GET …/bots/{bot}` shows it.
    fn deploy(&self, root: &Path, bot: &str, graph: &str, trigger: &str) -> Result<String> {
        let file = root.join(format!("{bot}-triggers.json"));
        std::fs::write(&file, graph).context("writing the demo graph")?;
        let path = format!("/api/v1/teams/ops/bots/{bot}/deployment");
        step(&format!(
            "curl -X PUT http://$SERVER{path} -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d @{}",
            file.display()
        ));
        let body: Value = serde_json::from_str(graph).context("the demo graph")?;
        let answer = self.call("PUT", &path, Some(&body))?;
        if answer.status != 200 {
            bail!(
                "deploying {bot} answered {}: {}",
                answer.status,
                answer.text()
            );
        }
        let deployed = answer.json()?;
        println!(
            "  200: deployed graph {}",
            deployed["graph_version"]
                .as_str()
                .map_or("?", |v| &v[..v.len().min(12)])
        );
        let status_path = format!("/api/v1/teams/ops/bots/{bot}");
        step(&format!(
            "curl http://$SERVER{status_path} -H \"Authorization: Bearer $TOKEN\""
        ));
        let status = self.call("GET", &status_path, None)?.json()?;
        let mut found = None;
        for t in status["triggers"].as_array().into_iter().flatten() {
            println!(
                "  trigger {} ({}{}): POST http://$SERVER{}   key: {}",
                t["trigger"].as_str().unwrap_or("?"),
                t["kind"].as_str().unwrap_or("?"),
                t["verify"]
                    .as_str()
                    .map(|v| format!(", {v}"))
                    .unwrap_or_default(),
                t["path"].as_str().unwrap_or("?"),
                t["secret"].as_str().unwrap_or("?"),
            );
            if t["trigger"] == trigger {
                found = t["path"].as_str().map(str::to_owned);
            }
        }
        found.with_context(|| format!("{bot}'s status shows no trigger {trigger}: {status}"))
    }

    /// A delivery from outside: no token, only its own signature headers.
    fn deliver(
        &self,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
        expect: u16,
    ) -> Result<Value> {
        let mut command = format!("curl -X POST http://$SERVER{path}");
        for (name, value) in headers {
            command.push_str(&format!(" -H '{name}: {value}'"));
        }
        command.push_str(" -d @body.json");
        step(&command);
        let mut all: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            all.push(("Content-Type", "application/json"));
        }
        let answer = send(self.addr, "POST", path, &all, body)?;
        println!("  {} {}", answer.status, answer.text());
        if answer.status != expect {
            bail!("expected {expect} from POST {path}");
        }
        answer.json()
    }

    /// The bot's one execution (the helper's, started by the interaction).
    fn only_execution(&self, bot: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let list = self
                .call(
                    "GET",
                    &format!("/api/v1/teams/ops/bots/{bot}/executions"),
                    None,
                )?
                .json()?;
            if let Some(id) = list["executions"][0]["id"].as_str() {
                return Ok(id.to_owned());
            }
            if Instant::now() > deadline {
                bail!("{bot} has no execution after 60 s: {list}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the execution to finish, then returns it.
    fn finished(&self, bot: &str, id: &str) -> Result<Value> {
        let path = format!("/api/v1/teams/ops/bots/{bot}/executions/{id}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let execution = self.call("GET", &path, None)?.json()?;
            if execution["finished"] == true {
                step(&format!(
                    "curl http://$SERVER{path} -H \"Authorization: Bearer $TOKEN\""
                ));
                return Ok(execution);
            }
            if Instant::now() > deadline {
                bail!("execution {id} did not finish in 60 s: {execution}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
