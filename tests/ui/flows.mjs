// The web UI in a real browser: Playwright (playwright-core) driving
// Debian's Chromium headless against a real `narakim serve`. Started by
// tests/ui.rs, which prepares the vault and, afterwards, searches the
// server's log and the database files for the same canaries.
//
// Every HTTP response body and every request body the browser exchanges
// is checked for the canary values, and so is the DOM after each step.
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (tests/ui.rs sets it)`);
  return v;
};
const BASE = env("NARAKIM_UI_BASE");
const TEAM_TOKEN = env("NARAKIM_UI_TEAM_TOKEN");
const BOT_TOKEN = env("NARAKIM_UI_BOT_TOKEN");
const ADMIN_TOKEN = env("NARAKIM_UI_ADMIN_TOKEN");
const SHOTS = env("NARAKIM_UI_SHOTS");
const CANARIES = env("NARAKIM_UI_CANARIES").split(",");
const [TEAM_VALUE, BOT_VALUE, TEAM_VALUE_2, STALE_VALUE, HOOK_VALUE] = CANARIES;
const GRAPH = JSON.stringify({
  nodes: [{ id: "hello", extension: "well-behaved", config: { chatty: true } }],
  triggers: [
    { id: "push", kind: "webhook", verify: { scheme: "github", secret: "GITHUB_WEBHOOK_SECRET" } },
    { id: "weekdays", kind: "schedule", cron: "30 3 * * mon-fri", timezone: "Europe/Berlin" },
  ],
}, null, 2);

mkdirSync(SHOTS, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "narakim-ui-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
  ],
  viewport: { width: 1280, height: 900 },
});

const failures = [];
const secretPosts = [];
let step = "start";

function leaks(text) {
  return CANARIES.filter((c) => text.includes(c));
}

/** Watches one page: every request and response body, CSP reports. */
function watch(page) {
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(BASE)) failures.push(`${step}: the page loaded ${url} from another origin`);
    const body = request.postData() || "";
    const found = leaks(body);
    if (found.length) failures.push(`${step}: a request body to ${url} carried a canary`);
    if (request.method() === "POST" && body.includes("sealed=")) secretPosts.push({ url, body });
  });
  page.on("response", async (response) => {
    try {
      const body = await response.text();
      if (leaks(body).length) failures.push(`${step}: the response of ${response.url()} holds a canary`);
    } catch { /* a redirect has no body */ }
  });
  page.on("console", (msg) => {
    if (/Content Security Policy|Refused to/.test(msg.text())) failures.push(`${step}: CSP: ${msg.text()}`);
  });
  page.on("pageerror", (e) => failures.push(`${step}: script error: ${e.message}`));
}

/** The DOM, including every input's live value, holds no canary. */
async function domClean(page) {
  const text = await page.evaluate(() =>
    document.documentElement.outerHTML + [...document.querySelectorAll("input, textarea")].map((i) => i.value).join("\n"));
  const found = leaks(text);
  if (found.length) failures.push(`${step}: the DOM holds a canary`);
}

/** Keyboard and screen-reader basics of the page in view. */
async function accessible(page) {
  const problems = await page.evaluate(() => {
    const out = [];
    if (!document.documentElement.lang) out.push("no lang on <html>");
    if (document.querySelectorAll("h1").length !== 1) out.push("not exactly one <h1>");
    for (const el of document.querySelectorAll("input:not([type=hidden]), textarea, select")) {
      if (!el.labels || el.labels.length === 0) out.push(`an input without a label: ${el.outerHTML.slice(0, 80)}`);
    }
    for (const b of document.querySelectorAll("button, a")) {
      if (!b.textContent.trim()) out.push(`a control without text: ${b.outerHTML.slice(0, 80)}`);
    }
    return out;
  });
  for (const p of problems) failures.push(`${step}: ${p}`);
  // On a page just loaded, the first Tab reaches the skip link.
  if (!(await page.evaluate(() => document.activeElement === document.body))) return;
  await page.keyboard.press("Tab");
  const first = await page.evaluate(() => document.activeElement && document.activeElement.className);
  if (first !== "skip") failures.push(`${step}: the first Tab stop is not the skip link`);
}

async function shot(page, name) {
  await domClean(page);
  await accessible(page);
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page, token) {
  await page.goto(`${BASE}/ui/sign-in`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${BASE}/ui/`);
}

/** Fills a sealing form's value field and submits it; waits for the load. */
async function saveValue(page, rowSelector, value) {
  const form = page.locator(rowSelector).locator("form.seal");
  const field = form.locator("input[data-seal-value]");
  assert.equal(await field.getAttribute("type"), "password");
  assert.equal(await field.getAttribute("autocomplete"), "off");
  assert.equal(await field.getAttribute("name"), null, "a value field must have no name");
  await field.fill(value);
  await Promise.all([page.waitForNavigation(), form.locator("button[type=submit]").click()]);
}

const page = await context.newPage();
watch(page);

// A signed-out visitor is sent to sign-in.
console.log("step:", (step = "signed out"));
await page.goto(`${BASE}/ui/teams/ops/secrets`);
assert.equal(new URL(page.url()).pathname, "/ui/sign-in");
await shot(page, "sign-in");

console.log("step:", (step = "sign in"));
await signIn(page, TEAM_TOKEN);
await shot(page, "home");

// Studio → Settings → Secrets: Add Secret.
console.log("step:", (step = "add a team secret"));
await page.goto(`${BASE}/ui/teams/ops/secrets`);
const headers = (await page.request.get(`${BASE}/ui/teams/ops/secrets`)).headers();
assert.equal(headers["cache-control"], "no-store");
assert.match(headers["content-security-policy"], /script-src 'self'/);
assert.doesNotMatch(headers["content-security-policy"], /unsafe/);
await page.getByLabel("Key name").fill("APP_ID");
await saveValue(page, "section:has(h2:text('Add Secret'))", TEAM_VALUE);
await page.getByText("Saved APP_ID (version 1)").waitFor();
assert.equal((await page.locator("tr[data-secret=APP_ID] td.version").textContent()).trim(), "1");
await shot(page, "settings-secrets");

// The bot's draft graph, and its preflight.
console.log("step:", (step = "draft"));
await page.goto(`${BASE}/ui/teams/ops/bots/greeter/deploy`);
await page.getByLabel("Graph (JSON)").fill(GRAPH);
await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Save draft and check" }).click()]);
await page.getByText("The draft would be refused").waitFor();
assert.match(await page.locator("ul.reasons").textContent(), /API_TOKEN/);
assert.ok(await page.getByRole("button", { name: "Deploy" }).isDisabled());
await shot(page, "dossier-deploy-refused");

// Configurations → Extension Secrets: the missing warning, then set it.
console.log("step:", (step = "configurations"));
await page.getByRole("link", { name: "Configurations" }).click();
await page.getByText("⚠ 2 required secrets are missing").waitFor();
assert.match(await page.locator("tr[data-secret=API_TOKEN] td.status").textContent(), /Missing/);
// The webhook trigger's key is a required secret like a node's.
assert.match(await page.locator("tr[data-node='trigger:push'] td.status").textContent(), /Missing/);
assert.match(await page.locator("tr[data-secret=APP_ID] td.status").textContent(), /Inherited from team ops \(version 1\)/);
await shot(page, "dossier-configurations-missing");
await saveValue(page, "tr[data-secret=API_TOKEN]", BOT_VALUE);
await page.getByText("Saved API_TOKEN (version 1)").waitFor();
await page.getByText("⚠ 1 required secret is missing").waitFor();
await saveValue(page, "tr[data-secret=GITHUB_WEBHOOK_SECRET]", HOOK_VALUE);
await page.getByText("Saved GITHUB_WEBHOOK_SECRET (version 1)").waitFor();
assert.equal(await page.getByText("required secret is missing").count(), 0, "the warning did not clear");
assert.match(await page.locator("tr[data-secret=API_TOKEN] td.status").textContent(), /Set for this bot \(version 1\)/);
await shot(page, "dossier-configurations");

// Deploy, run, and read the execution.
console.log("step:", (step = "deploy"));
await page.getByRole("link", { name: "Deploy" }).click();
await page.getByText("The draft passes the preflight").waitFor();
await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Deploy" }).click()]);
await page.getByText(/Deployed graph \w+/).waitFor();
await shot(page, "dossier-deploy");

console.log("step:", (step = "run"));
await page.getByRole("link", { name: "Executions" }).click();
await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Run now" }).click()]);
const executionUrl = page.url();
for (let i = 0; i < 100; i++) {
  const status = (await page.locator("dd.status").textContent()).trim();
  if (status === "succeeded" || status === "failed") break;
  await page.waitForTimeout(200);
  await page.goto(executionUrl);
}
assert.equal((await page.locator("dd.status").textContent()).trim(), "succeeded");
const logs = await page.locator("pre.logs").textContent();
assert.match(logs, /\[REDACTED:API_TOKEN\]/, "the execution's log does not show the redaction");
assert.match(logs, /\[REDACTED:APP_ID\]/);
assert.match(await page.locator("section.node").textContent(), /Secrets read: API_TOKEN, APP_ID/);
await shot(page, "dossier-execution");
await page.getByRole("link", { name: "Executions" }).click();
// htmx refreshes the table in place.
await page.getByRole("link", { name: "Refresh" }).click();
await page.locator("#executions td.status.succeeded").first().waitFor();
await shot(page, "dossier-executions");
await page.getByRole("link", { name: "Triggers" }).click();
assert.match(await page.locator("tr:has(th code:text('push'))").textContent(), new RegExp(`${BASE}/hooks/trg_[0-9a-f]+`));
assert.match(await page.locator("tr:has(th code:text('weekdays'))").textContent(), /\d{4}-\d\d-\d\dT03:30:00Z|\d{4}-\d\d-\d\dT0[12]:30:00Z/);
await shot(page, "dossier-triggers");

// Overwrite: the version goes up. A stale tab gets a conflict.
console.log("step:", (step = "overwrite"));
const stale = await context.newPage();
watch(stale);
await stale.goto(`${BASE}/ui/teams/ops/secrets`);
await page.goto(`${BASE}/ui/teams/ops/secrets`);
await saveValue(page, "tr[data-secret=APP_ID]", TEAM_VALUE_2);
await page.getByText("Saved APP_ID (version 2)").waitFor();
assert.equal((await page.locator("tr[data-secret=APP_ID] td.version").textContent()).trim(), "2");
console.log("step:", (step = "stale tab"));
const [staleResponse] = await Promise.all([
  stale.waitForResponse((r) => r.request().method() === "POST"),
  saveValue(stale, "tr[data-secret=APP_ID]", STALE_VALUE),
]);
assert.equal(staleResponse.status(), 409);
await stale.getByText(/Conflict: APP_ID was changed since this page was loaded/).waitFor();
assert.equal((await stale.locator("tr[data-secret=APP_ID] td.version").textContent()).trim(), "2", "the stale save changed the secret");
await shot(stale, "settings-secrets-conflict");
await stale.close();

// Replays of a captured envelope onto another name, scope or version.
console.log("step:", (step = "replay"));
const captured = secretPosts.find((p) => p.url.endsWith("/ui/teams/ops/secrets") && p.body.includes("expected=1"));
assert.ok(captured, "no sealed overwrite was captured");
assert.ok(!leaks(captured.body).length && /sealed=%7B/.test(captured.body), "the body is not only the envelope");
const fields = new URLSearchParams(captured.body);
const replay = async (url, changes) => {
  const form = new URLSearchParams(fields);
  for (const [k, v] of Object.entries(changes)) form.set(k, v);
  return page.request.post(url, { form: Object.fromEntries(form), maxRedirects: 0 });
};
for (const [url, changes, what] of [
  [`${BASE}/ui/teams/ops/secrets`, { name: "OTHER_NAME", expected: "new" }, "another name"],
  [`${BASE}/ui/teams/ops/bots/greeter/secrets`, { expected: "1" }, "another scope"],
  [`${BASE}/ui/teams/ops/secrets`, { expected: "2" }, "another version"],
  [`${BASE}/ui/teams/ops/secrets`, {}, "the same write again"],
]) {
  const r = await replay(url, changes);
  assert.ok(r.status() >= 400, `a replay onto ${what} answered ${r.status()}`);
}
const api = (path, init = {}) => fetch(`${BASE}${path}`, { ...init, headers: { authorization: `Bearer ${TEAM_TOKEN}`, ...(init.headers || {}) } });
const envelope = JSON.parse(fields.get("sealed"));
const viaApi = await api("/api/v1/teams/ops/secrets/OTHER_NAME", {
  method: "PUT", headers: { "content-type": "application/json", "if-none-match": "*" }, body: JSON.stringify({ sealed: envelope }),
});
assert.equal(viaApi.status, 422, "the API opened an envelope sealed for another secret");
const listed = await (await api("/api/v1/teams/ops/secrets")).json();
assert.deepEqual(listed.secrets.map((s) => [s.name, s.version]), [["APP_ID", 2]], "a replay changed the secrets");
const botListed = await (await api("/api/v1/teams/ops/bots/greeter/secrets")).json();
assert.deepEqual(botListed.secrets.filter((s) => s.scope === "bot").map((s) => [s.name, s.version]), [["API_TOKEN", 1], ["GITHUB_WEBHOOK_SECRET", 1]]);

// CSRF: a form POST without its token, or with another, is refused.
console.log("step:", (step = "csrf"));
for (const form of [{ name: "X_NAME", expected: "new", sealed: fields.get("sealed") }, { csrf: "forged", name: "X_NAME", expected: "new", sealed: "" }]) {
  const r = await page.request.post(`${BASE}/ui/teams/ops/secrets`, { form, maxRedirects: 0 });
  assert.equal(r.status(), 403, `a POST without the CSRF token answered ${r.status()}`);
}
const crossSite = await page.request.post(`${BASE}/ui/teams/ops/bots/greeter/pause`, {
  form: { csrf: fields.get("csrf") }, headers: { origin: "https://evil.example" }, maxRedirects: 0,
});
assert.equal(crossSite.status(), 403, "a cross-site POST was accepted");
assert.equal((await (await api("/api/v1/teams/ops/bots/greeter")).json()).paused, false);

// Pause and resume from the dossier.
console.log("step:", (step = "pause"));
await page.goto(`${BASE}/ui/teams/ops/bots/greeter/configurations`);
await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Pause" }).click()]);
assert.equal((await (await api("/api/v1/teams/ops/bots/greeter")).json()).paused, true);
await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Resume" }).click()]);
assert.equal((await (await api("/api/v1/teams/ops/bots/greeter")).json()).paused, false);

// Delete asks first.
console.log("step:", (step = "delete"));
await page.goto(`${BASE}/ui/teams/ops/bots/greeter/configurations`);
await page.goto(`${BASE}/ui/teams/ops/secrets`);
await page.locator("tr[data-secret=APP_ID]").getByRole("link", { name: "Delete…" }).click();
await page.getByText("Delete the team secret APP_ID of team ops (version 2)?").waitFor();
await shot(page, "settings-secrets-delete");
await page.getByRole("link", { name: "Cancel" }).click();
assert.equal((await page.locator("tr[data-secret=APP_ID] td.version").textContent()).trim(), "2");

console.log("step:", (step = "extensions"));
await page.goto(`${BASE}/ui/extensions`);
await page.getByText("api.example.test").first().waitFor();
// The reveals-secrets mark: 0.1.0 components read plaintext; the 0.2.0 one
// holds placeholders only.
const section = (name) => page.locator("section.extension", { has: page.getByRole("heading", { name: new RegExp(`^${name} `) }) });
assert.match(await section("well-behaved").textContent(), /Reveals secrets/);
assert.match(await section("placeholders").textContent(), /Holds placeholders only/);
assert.doesNotMatch(await section("placeholders").textContent(), /Reveals secrets/);
await shot(page, "extensions");

// What a hostile extension wrote is shown as text: no markup, no
// reordering, no terminal escapes.
console.log("step:", (step = "hostile text"));
await page.goto(`${BASE}/ui/teams/ops/bots/sibling/executions`);
await Promise.all([page.waitForNavigation(), page.locator("#executions tbody a").first().click()]);
assert.equal((await page.locator("dd.status").textContent()).trim(), "failed");
assert.equal(await page.evaluate(() => window.pwned), undefined, "a guest's script ran");
assert.equal(await page.locator("#injected").count(), 0, "a guest's markup became an element");
assert.equal(await page.locator("main script, main img").count(), 0);
const shownLogs = await page.locator("pre.logs").textContent();
assert.ok(shownLogs.includes("<script>window.pwned=1</script>"), "the log is not shown as text");
assert.ok(shownLogs.includes("\\u{202e}desrever\\x1b[31m"), "bidi or escape characters reached the page");
{ const t = await page.locator("main").textContent(); const i = t.indexOf("\u202e"); assert.ok(i < 0, "a bidi override reached the page: " + JSON.stringify(t.slice(Math.max(0, i - 200), i + 20))); }
await shot(page, "dossier-execution-hostile");

// A credential's request: the record says which secret went where, and
// copies as curl, with no value and no placeholder in it.
console.log("step:", (step = "outbound request as curl"));
await page.goto(`${BASE}/ui/teams/ops/bots/courier/executions`);
await Promise.all([page.waitForNavigation(), page.locator("#executions tbody a").first().click()]);
assert.equal((await page.locator("dd.status").textContent()).trim(), "succeeded");
await page.getByText("As curl").click();
const curl = await page.locator("pre.curl").textContent();
assert.ok(curl.startsWith("curl -X 'POST' 'https://api.example.test/echo'"), curl);
assert.ok(curl.includes("'authorization: Bearer ‹API_TOKEN›'"), curl);
assert.ok(!curl.includes("nrkph_"), curl);
await shot(page, "dossier-execution-curl");

console.log("step:", (step = "sign out"));
await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign out" }).click()]);
assert.equal(new URL(page.url()).pathname, "/ui/sign-in");
await page.goto(`${BASE}/ui/teams/ops/secrets`);
assert.equal(new URL(page.url()).pathname, "/ui/sign-in", "the session outlived sign-out");

// A bot-scoped session sees its bot, not another's.
console.log("step:", (step = "bot scope"));
await signIn(page, BOT_TOKEN);
const own = await page.goto(`${BASE}/ui/teams/ops/bots/greeter/configurations`);
assert.equal(own.status(), 200);
const other = await page.goto(`${BASE}/ui/teams/ops/bots/sibling/configurations`);
assert.equal(other.status(), 403, "a bot-scoped session opened another bot's dossier");
const studio = await page.goto(`${BASE}/ui/teams/ops/secrets`);
assert.equal(studio.status(), 403);
await page.goto(`${BASE}/ui/teams/ops/bots/greeter/configurations`);
await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign out" }).click()]);

console.log("step:", (step = "audit"));
await signIn(page, ADMIN_TOKEN);
await page.goto(`${BASE}/ui/audit?bot=greeter`);
await page.getByRole("cell", { name: "bot.deploy" }).first().waitFor();
await shot(page, "audit");

// Without JavaScript the pages read, and no value can be posted.
console.log("step:", (step = "no script"));
await context.close();
rmSync(profile, { recursive: true, force: true });
const profile2 = mkdtempSync(join(tmpdir(), "narakim-ui-"));
const noJs = await chromium.launchPersistentContext(profile2, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  javaScriptEnabled: false,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
const bare = await noJs.newPage();
watch(bare);
await signIn(bare, TEAM_TOKEN);
await bare.goto(`${BASE}/ui/teams/ops/secrets`);
await bare.getByText("Saving a value needs JavaScript").first().waitFor();
await bare.getByLabel("Key name").fill("NO_SCRIPT");
await bare.locator("section:has(h2:text('Add Secret')) input[data-seal-value]").fill(STALE_VALUE);
const [refused] = await Promise.all([
  bare.waitForResponse((r) => r.request().method() === "POST"),
  bare.locator("section:has(h2:text('Add Secret')) button[type=submit]").click(),
]);
assert.equal(refused.status(), 400);
await bare.getByText("needs JavaScript, which seals the value").waitFor();
await noJs.close();
rmSync(profile2, { recursive: true, force: true });

if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}
console.log(`ok: ${secretPosts.length} sealed posts, screenshots in ${SHOTS}`);
