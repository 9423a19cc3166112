//! The pages, as compile-time templates (maud), and the view types they
//! render.
//!
//! Every view type is built from names, versions, times and scrubbed
//! records. None has a field that could hold a secret value: the vault's
//! `SecretValue` never reaches this module, and the only inputs that take
//! a value are password fields without a `name`, so a browser posts what
//! `seal.js` put in the `sealed` field (an HPKE envelope) and nothing
//! else.

use maud::{DOCTYPE, Markup, html};

use crate::engine::executor::TriggerStatus;

/// The htmx build the pages load (vendored under `assets/`).
pub const HTMX: &str = "htmx-2.0.11.min.js";

/// What every page's frame shows: who is signed in and the CSRF token.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub csrf: String,
    /// The token's id and scope, as `tok_… (team ops)`.
    pub who: String,
    /// The team whose Studio the nav links to, if the token has one.
    pub team: Option<String>,
    /// Whether the token may read the audit trail.
    pub audit: bool,
}

fn frame(title: &str, chrome: Option<&Chrome>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                // htmx must never evaluate text as script, nor inject its
                // own inline style (the CSP would refuse both anyway).
                meta name="htmx-config" content=r#"{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"selfRequestsOnly":true,"historyCacheSize":0}"#;
                title { (title) " · narakim" }
                link rel="stylesheet" href="/ui/assets/app.css";
                script src={ "/ui/assets/" (HTMX) } defer {}
                script src="/ui/assets/seal.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Main" {
                        a.brand href="/ui/" { "narakim" }
                        @if let Some(c) = chrome {
                            @if let Some(team) = &c.team {
                                a href={ "/ui/teams/" (team) "/secrets" } { "Studio → Settings → Secrets" }
                            }
                            a href="/ui/extensions" { "Extensions" }
                            @if c.audit { a href="/ui/audit" { "Audit" } }
                            span.who { "Signed in as " (c.who) }
                            form.inline method="post" action="/ui/sign-out" {
                                input type="hidden" name="csrf" value=(c.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A message box: `kind` is `notice`, `warning` or `error`.
pub fn banner(kind: &str, text: &str) -> Markup {
    let role = if kind == "error" { "alert" } else { "status" };
    html! { p class={ "banner " (kind) } role=(role) { (text) } }
}

fn banners(notice: &Option<String>, error: &Option<String>) -> Markup {
    html! {
        @if let Some(n) = notice { (banner("notice", n)) }
        @if let Some(e) = error { (banner("error", e)) }
    }
}

// ----- sign-in -----

pub fn sign_in(csrf: &str, error: Option<&str>) -> Markup {
    frame(
        "Sign in",
        None,
        html! {
            @if let Some(e) = error { (banner("error", e)) }
            p { "Paste an API token (" code { "narakim token create" } "). The session can do exactly what the token can, and ends when the token expires, is revoked, or after 8 hours." }
            form method="post" action="/ui/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="off" required spellcheck="false" placeholder="nrk_…";
                button type="submit" { "Sign in" }
            }
        },
    )
}

// ----- home -----

#[derive(Debug, Clone)]
pub struct TeamLink {
    pub name: String,
    pub bots: Vec<String>,
}

pub fn home(chrome: &Chrome, teams: &[TeamLink], bot: Option<(&str, &str)>) -> Markup {
    frame(
        "Home",
        Some(chrome),
        html! {
            @if let Some((team, bot)) = bot {
                p { "This token is scoped to one bot: " a href={ "/ui/teams/" (team) "/bots/" (bot) "/configurations" } { (bot) } "." }
            }
            @for team in teams {
                section {
                    h2 { "Team " (team.name) }
                    p { a href={ "/ui/teams/" (team.name) "/secrets" } { "Studio → Settings → Secrets" } }
                    @if team.bots.is_empty() { p { "No bots yet." } } @else {
                        ul { @for bot in &team.bots {
                            li { a href={ "/ui/teams/" (team.name) "/bots/" (bot) "/configurations" } { "Bot Dossier: " (bot) } }
                        } }
                    }
                }
            }
        },
    )
}

// ----- secret forms -----

/// A form that seals a value before it posts (`seal.js`): the value field
/// has no `name`, so without script nothing but the envelope can leave.
#[derive(Debug)]
pub struct SealForm<'a> {
    pub action: String,
    pub scope: &'static str,
    pub owner: &'a str,
    /// `None`: the form asks for the name (Add Secret).
    pub name: Option<&'a str>,
    /// `new`, or the version being overwritten.
    pub expected: String,
    pub field_id: String,
    pub button: &'a str,
    pub label: String,
}

pub fn seal_form(csrf: &str, f: &SealForm<'_>) -> Markup {
    html! {
        form.seal method="post" action=(f.action) data-scope=(f.scope) data-owner=(f.owner) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="expected" value=(f.expected);
            input type="hidden" name="sealed" value="";
            @match f.name {
                Some(name) => { input type="hidden" name="name" value=(name); }
                None => {
                    label for={ (f.field_id) "-name" } { "Key name" }
                    input id={ (f.field_id) "-name" } name="name" required autocomplete="off" spellcheck="false" pattern="[A-Za-z_][A-Za-z0-9_]*" title="Letters, digits and underscores, not starting with a digit";
                }
            }
            label for=(f.field_id) { (f.label) }
            input id=(f.field_id) type="password" autocomplete="off" required minlength="8" data-seal-value;
            button type="submit" { (f.button) }
            // Removed by seal.js; a page without script keeps it.
            span.no-script.warning { " Saving a value needs JavaScript: the page seals it before sending." }
        }
    }
}

// ----- Studio → Settings → Secrets -----

#[derive(Debug, Clone)]
pub struct SecretRow {
    pub name: String,
    pub version: u64,
    pub updated_at: String,
    pub updated_by: String,
    pub used_by: Vec<String>,
}

#[derive(Debug)]
pub struct TeamSecrets {
    pub team: String,
    pub rows: Vec<SecretRow>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub fn team_secrets(chrome: &Chrome, v: &TeamSecrets) -> Markup {
    let team = v.team.as_str();
    frame(
        &format!("Studio → Settings → Secrets: {team}"),
        Some(chrome),
        html! {
            (banners(&v.notice, &v.error))
            p { "Team secrets are shared by every bot of team " (team) "; a bot secret of the same name overrides one. A saved value is never shown again: to change it, overwrite it." }
            table {
                caption { "Secrets of team " (team) }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Version" } th scope="col" { "Updated" } th scope="col" { "By" } th scope="col" { "Used by" } th scope="col" { "Overwrite" } th scope="col" { "Delete" } } }
                tbody {
                    @if v.rows.is_empty() { tr { td colspan="7" { "No team secrets yet." } } }
                    @for (i, row) in v.rows.iter().enumerate() {
                        tr data-secret=(row.name) {
                            th scope="row" { code { (row.name) } }
                            td.version { (row.version) }
                            td { (row.updated_at) }
                            td { (row.updated_by) }
                            td { @if row.used_by.is_empty() { "—" } @else { (row.used_by.join(", ")) } }
                            td { (seal_form(&chrome.csrf, &SealForm {
                                action: format!("/ui/teams/{team}/secrets"),
                                scope: "team", owner: team, name: Some(&row.name),
                                expected: row.version.to_string(), field_id: format!("overwrite-{i}"),
                                button: "Overwrite", label: format!("New value for {}", row.name),
                            })) }
                            td { a href={ "/ui/teams/" (team) "/secrets/" (row.name) "/delete?version=" (row.version) } { "Delete…" } }
                        }
                    }
                }
            }
            section {
                h2 { "Add Secret" }
                (seal_form(&chrome.csrf, &SealForm {
                    action: format!("/ui/teams/{team}/secrets"),
                    scope: "team", owner: team, name: None, expected: "new".into(),
                    field_id: "add".into(), button: "Save", label: "Value".into(),
                }))
            }
        },
    )
}

/// The confirmation before a delete.
pub fn confirm_delete(
    chrome: &Chrome,
    action: &str,
    back: &str,
    what: &str,
    version: u64,
) -> Markup {
    frame(
        "Delete a secret",
        Some(chrome),
        html! {
            p { "Delete " (what) " (version " (version) ")? Bots that read it fail their next run until it is set again. This cannot be undone." }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(chrome.csrf);
                input type="hidden" name="expected" value=(version);
                button.danger type="submit" { "Delete" }
                " "
                a href=(back) { "Cancel" }
            }
        },
    )
}

// ----- the Bot Dossier -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Configurations,
    Deploy,
    Executions,
    Triggers,
}

#[derive(Debug, Clone)]
pub struct DossierHead {
    pub team: String,
    pub bot: String,
    pub paused: bool,
    pub graph_version: Option<String>,
}

fn dossier(chrome: &Chrome, head: &DossierHead, tab: Tab, body: Markup) -> Markup {
    let base = format!("/ui/teams/{}/bots/{}", head.team, head.bot);
    let tabs = [
        (Tab::Configurations, "configurations", "Configurations"),
        (Tab::Deploy, "deploy", "Deploy"),
        (Tab::Executions, "executions", "Executions"),
        (Tab::Triggers, "triggers", "Triggers"),
    ];
    frame(
        &format!("Bot Dossier: {}", head.bot),
        Some(chrome),
        html! {
            p.state {
                "Team " (head.team) " · "
                @match &head.graph_version { Some(v) => { "deployed graph " code { (v) } }, None => { "not deployed" } }
                " · "
                @if head.paused { strong { "paused" } } @else { "running" }
            }
            form.inline method="post" action={ (base) (if head.paused { "/resume" } else { "/pause" }) } {
                input type="hidden" name="csrf" value=(chrome.csrf);
                button type="submit" { @if head.paused { "Resume" } @else { "Pause" } }
                span.hint { " Pause a production bot while you rotate its secrets, then resume it." }
            }
            nav.tabs aria-label="Dossier" {
                @for (t, path, label) in tabs {
                    @if t == tab { a href={ (base) "/" (path) } aria-current="page" { (label) } }
                    @else { a href={ (base) "/" (path) } { (label) } }
                }
            }
            (body)
        },
    )
}

/// Where one required secret of a node resolves.
#[derive(Debug, Clone)]
pub enum Resolution {
    Bot { version: u64 },
    Team { version: u64 },
    Trigger,
    Missing,
}

#[derive(Debug, Clone)]
pub struct ConfigRow {
    pub node: String,
    pub extension: String,
    pub secret: String,
    pub resolution: Resolution,
}

#[derive(Debug)]
pub struct Configurations {
    pub head: DossierHead,
    /// Which graph the rows come from: `deployed graph` or `draft`.
    pub source: Option<&'static str>,
    pub rows: Vec<ConfigRow>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub fn configurations(chrome: &Chrome, v: &Configurations) -> Markup {
    let h = &v.head;
    let missing = v
        .rows
        .iter()
        .filter(|r| matches!(r.resolution, Resolution::Missing))
        .count();
    let action = format!("/ui/teams/{}/bots/{}/secrets", h.team, h.bot);
    dossier(
        chrome,
        h,
        Tab::Configurations,
        html! {
            (banners(&v.notice, &v.error))
            h2 { "Extension Secrets" }
            @match v.source {
                None => { p { "This bot has no graph yet: save one on the " a href={ "/ui/teams/" (h.team) "/bots/" (h.bot) "/deploy" } { "Deploy" } " tab to see the secrets its extensions need." } }
                Some(source) => {
                    p { "The secrets each node's extension requires, for the " (source) "." }
                    @if missing > 0 {
                        p.banner.warning role="alert" { "⚠ " (missing) " required secret" (if missing == 1 { " is" } else { "s are" }) " missing. The bot cannot be deployed until " (if missing == 1 { "it is" } else { "they are" }) " set." }
                    }
                    table {
                        caption { "Required secrets by node" }
                        thead { tr { th scope="col" { "Node" } th scope="col" { "Extension" } th scope="col" { "Secret" } th scope="col" { "Status" } th scope="col" { "Set" } } }
                        tbody {
                            @for (i, row) in v.rows.iter().enumerate() {
                                tr data-secret=(row.secret) data-node=(row.node) {
                                    td { code { (row.node) } }
                                    td { (row.extension) }
                                    th scope="row" { code { (row.secret) } }
                                    @match row.resolution {
                                        Resolution::Bot { version } => {
                                            td.status { "Set for this bot (version " (version) ")" }
                                            td { (seal_form(&chrome.csrf, &SealForm { action: action.clone(), scope: "bot", owner: &h.bot, name: Some(&row.secret), expected: version.to_string(), field_id: format!("value-{i}"), button: "Save", label: format!("New value for {}", row.secret) })) }
                                        }
                                        Resolution::Team { version } => {
                                            td.status { "Inherited from team " (h.team) " (version " (version) ")" }
                                            td { (seal_form(&chrome.csrf, &SealForm { action: action.clone(), scope: "bot", owner: &h.bot, name: Some(&row.secret), expected: "new".into(), field_id: format!("value-{i}"), button: "Override for this bot", label: format!("Bot value for {}", row.secret) })) }
                                        }
                                        Resolution::Trigger => {
                                            td.status { "Given to each run by its trigger" }
                                            td { "—" }
                                        }
                                        Resolution::Missing => {
                                            td.status.missing { strong { "⚠ Missing" } }
                                            td { (seal_form(&chrome.csrf, &SealForm { action: action.clone(), scope: "bot", owner: &h.bot, name: Some(&row.secret), expected: "new".into(), field_id: format!("value-{i}"), button: "Save", label: format!("Value for {}", row.secret) })) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[derive(Debug)]
pub struct DeployPage {
    pub head: DossierHead,
    pub draft: Option<String>,
    /// The preflight of the draft: every reason it would be refused.
    pub reasons: Option<Vec<String>>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub fn deploy(chrome: &Chrome, v: &DeployPage) -> Markup {
    let h = &v.head;
    let base = format!("/ui/teams/{}/bots/{}", h.team, h.bot);
    dossier(
        chrome,
        h,
        Tab::Deploy,
        html! {
            (banners(&v.notice, &v.error))
            h2 { "Preflight" }
            @match &v.reasons {
                None => { p { "No draft graph saved yet." } }
                Some(r) if r.is_empty() => { p.banner.notice role="status" { "The draft passes the preflight: it can be deployed." } }
                Some(r) => {
                    p.banner.warning role="alert" { "The draft would be refused:" }
                    ul.reasons { @for reason in r { li { pre { (reason) } } } }
                }
            }
            form method="post" action={ (base) "/deploy" } {
                input type="hidden" name="csrf" value=(chrome.csrf);
                button type="submit" disabled[!matches!(&v.reasons, Some(r) if r.is_empty())] { "Deploy" }
            }
            h2 { "Draft graph" }
            p { "A graph document in JSON. It must not hold a secret value: nodes read secrets from the vault." }
            form method="post" action={ (base) "/draft" } {
                input type="hidden" name="csrf" value=(chrome.csrf);
                label for="graph" { "Graph (JSON)" }
                textarea #graph name="graph" rows="16" spellcheck="false" autocomplete="off" { (v.draft.as_deref().unwrap_or("")) }
                button type="submit" { "Save draft and check" }
            }
        },
    )
}

#[derive(Debug, Clone)]
pub struct ExecutionRow {
    pub id: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: String,
    pub summary: String,
}

#[derive(Debug)]
pub struct Executions {
    pub head: DossierHead,
    pub rows: Vec<ExecutionRow>,
}

/// The executions table alone (htmx swaps it in on Refresh).
pub fn executions_table(team: &str, bot: &str, rows: &[ExecutionRow]) -> Markup {
    html! {
        table #executions {
            caption { "Newest first" }
            thead { tr { th scope="col" { "Execution" } th scope="col" { "Status" } th scope="col" { "Started" } th scope="col" { "Finished" } th scope="col" { "Summary" } } }
            tbody {
                @if rows.is_empty() { tr { td colspan="5" { "No executions yet." } } }
                @for r in rows {
                    tr {
                        td { a href={ "/ui/teams/" (team) "/bots/" (bot) "/executions/" (r.id) } { code { (r.id) } } }
                        td class={ "status " (r.status) } { (r.status) }
                        td { (r.started_at) }
                        td { (r.finished_at) }
                        td { (r.summary) }
                    }
                }
            }
        }
    }
}

pub fn executions(chrome: &Chrome, v: &Executions) -> Markup {
    let h = &v.head;
    let base = format!("/ui/teams/{}/bots/{}", h.team, h.bot);
    dossier(
        chrome,
        h,
        Tab::Executions,
        html! {
            form.inline method="post" action={ (base) "/run" } {
                input type="hidden" name="csrf" value=(chrome.csrf);
                button type="submit" { "Run now" }
            }
            " "
            a href={ (base) "/executions" } hx-get={ (base) "/executions?fragment=table" } hx-target="#executions" hx-swap="outerHTML" { "Refresh" }
            (executions_table(&h.team, &h.bot, &v.rows))
        },
    )
}

#[derive(Debug, Clone)]
pub struct NodeView {
    pub node: String,
    pub extension: String,
    pub status: String,
    pub duration_ms: i64,
    pub secrets_read: Vec<String>,
    /// `LEVEL message`, scrubbed by the runtime.
    pub logs: Vec<String>,
    pub stdout: String,
    pub stderr: String,
    pub output: Option<String>,
    pub error: Option<String>,
    /// Each outbound request.
    pub egress: Vec<EgressView>,
}

/// One outbound request: `METHOD host` and, when refused, why; and the
/// request as a curl command, with `‹NAME›` where a credential went.
#[derive(Debug, Clone)]
pub struct EgressView {
    pub line: String,
    pub curl: Option<String>,
}

#[derive(Debug)]
pub struct ExecutionDetail {
    pub head: DossierHead,
    pub id: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: String,
    pub started_by: String,
    pub trigger: String,
    pub summary: String,
    pub nodes: Vec<NodeView>,
}

pub fn execution(chrome: &Chrome, v: &ExecutionDetail) -> Markup {
    dossier(
        chrome,
        &v.head,
        Tab::Executions,
        html! {
            h2 { "Execution " code { (v.id) } }
            dl {
                dt { "Status" } dd class={ "status " (v.status) } { (v.status) }
                dt { "Started" } dd { (v.started_at) }
                dt { "Finished" } dd { (v.finished_at) }
                dt { "Started by" } dd { (v.started_by) }
                dt { "Summary" } dd { (v.summary) }
            }
            h3 { "Trigger" }
            pre { (v.trigger) }
            @for n in &v.nodes {
                section.node {
                    h3 { "Node " code { (n.node) } " · " (n.extension) " · " span class={ "status " (n.status) } { (n.status) } " · " (n.duration_ms) " ms" }
                    p { "Secrets read: " @if n.secrets_read.is_empty() { "none" } @else { @for (i, s) in n.secrets_read.iter().enumerate() { @if i > 0 { ", " } code { (s) } } } }
                    @if let Some(e) = &n.error { (banner("error", e)) }
                    h4 { "Logs" }
                    @if n.logs.is_empty() { p { "None." } } @else { pre.logs { @for l in &n.logs { (l) "\n" } } }
                    @if !n.stdout.is_empty() { h4 { "Standard output" } pre { (n.stdout) } }
                    @if !n.stderr.is_empty() { h4 { "Standard error" } pre { (n.stderr) } }
                    @if let Some(o) = &n.output { h4 { "Output" } pre { (o) } }
                    h4 { "Outbound requests" }
                    @if n.egress.is_empty() { p { "None." } } @else { ul { @for e in &n.egress { li { code { (e.line) } @if let Some(curl) = &e.curl { details { summary { "As curl" } pre.curl { (curl) } } } } } } }
                }
            }
        },
    )
}

#[derive(Debug)]
pub struct Triggers {
    pub head: DossierHead,
    pub rows: Vec<TriggerStatus>,
    /// `scheme://host` of this server, as the browser reached it.
    pub base: String,
}

pub fn triggers(chrome: &Chrome, v: &Triggers) -> Markup {
    dossier(
        chrome,
        &v.head,
        Tab::Triggers,
        html! {
            @if v.rows.is_empty() { p { "The deployed graph has no triggers. Runs start from the API or the Executions tab." } }
            @else {
                table {
                    caption { "Triggers of the deployed graph" }
                    thead { tr { th scope="col" { "Trigger" } th scope="col" { "Kind" } th scope="col" { "Verified by" } th scope="col" { "Key secret" } th scope="col" { "URL" } th scope="col" { "Next fire (UTC)" } } }
                    tbody { @for t in &v.rows {
                        tr {
                            th scope="row" { code { (t.trigger) } }
                            td { (t.kind) }
                            td { (t.verify) }
                            td { @if let Some(s) = &t.secret { code { (s) } } @else { "—" } }
                            td { @if let Some(p) = &t.path { code { (v.base) (p) } } @else { "—" } }
                            td { (t.next_fire.as_deref().unwrap_or("—")) }
                        }
                    } }
                }
            }
        },
    )
}

// ----- Extensions and Audit -----

#[derive(Debug, Clone)]
pub struct ExtensionRow {
    pub name: String,
    pub version: String,
    pub description: String,
    /// Each required secret with the hosts it may be sent to and where the
    /// host puts it into requests (empty: read as plaintext).
    pub secrets: Vec<(String, Vec<String>, String)>,
    /// Whether it imports `secrets.get`, and so holds plaintext.
    pub reveals_secrets: bool,
}

pub fn extensions(chrome: &Chrome, rows: &[ExtensionRow]) -> Markup {
    frame(
        "Extensions",
        Some(chrome),
        html! {
            @if rows.is_empty() { p { "No extensions installed (" code { "narakim extension install" } ")." } }
            @for e in rows {
                section.extension {
                    h2 { (e.name) " " (e.version) }
                    p { (e.description) }
                    @if e.reveals_secrets {
                        p.reveals { strong { "⚠ Reveals secrets:" } " it reads secret values as plaintext (" code { "secrets.get" } "), so it holds them inside its sandbox." }
                    } @else {
                        p.credentials { "Holds placeholders only: narakim puts the values into its requests." }
                    }
                    @if e.secrets.is_empty() { p { "Requires no secrets." } } @else {
                        table {
                            caption { "Required secrets of " (e.name) " " (e.version) }
                            thead { tr { th scope="col" { "Secret" } th scope="col" { "May be sent to" } th scope="col" { "Put into requests by narakim" } } }
                            tbody { @for (name, hosts, places) in &e.secrets {
                                tr {
                                    th scope="row" { code { (name) } }
                                    td { @if hosts.is_empty() { "no host (used inside the extension only)" } @else { (hosts.join(", ")) } }
                                    td { @if places.is_empty() { "nowhere (read as plaintext)" } @else { code { (places) } } }
                                }
                            } }
                        }
                    }
                }
            }
        },
    )
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub team: String,
    pub bot: String,
    pub actor: String,
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

pub fn audit(chrome: &Chrome, filter: &AuditFilter, rows: &[AuditRow]) -> Markup {
    frame(
        "Audit",
        Some(chrome),
        html! {
            form.filter method="get" action="/ui/audit" {
                label for="f-team" { "Team" } input #f-team name="team" value=(filter.team);
                label for="f-bot" { "Bot" } input #f-bot name="bot" value=(filter.bot);
                label for="f-actor" { "Actor" } input #f-actor name="actor" value=(filter.actor);
                button type="submit" { "Filter" }
            }
            table {
                caption { "Newest first (" (rows.len()) " shown)" }
                thead { tr { th scope="col" { "When (UTC)" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "On" } th scope="col" { "Detail" } } }
                tbody { @for r in rows {
                    tr { td { (r.at) } td { code { (r.actor) } } td { (r.action) } td { (r.target) } td { (r.detail) } }
                } }
            }
        },
    )
}

/// An error page: what went wrong and what to do.
pub fn error(chrome: Option<&Chrome>, status: u16, detail: &str, reasons: &[String]) -> Markup {
    frame(
        &format!("Error {status}"),
        chrome,
        html! {
            (banner("error", detail))
            @if !reasons.is_empty() { ul.reasons { @for r in reasons { li { pre { (r) } } } } }
            p { a href="/ui/" { "Back to the start" } }
        },
    )
}
