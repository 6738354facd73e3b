// The reviewer console in headless Chromium: sign in, claim the top case,
// modify and approve it, see the waiting agent receive the modified action;
// work a review case through its four stages; check that agent-supplied HTML
// never executes; screenshot every page into target/browser-artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = process.env.ARBITER_BIN || join(root, "target", "debug", "arbiter");
const artifacts = join(root, "target", "browser-artifacts");
mkdirSync(artifacts, { recursive: true });

let server, url, admin, browser;

async function api(key, method, path, body) {
  const r = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), "arbiter-browser-"));
  server = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--db", join(dir, "arbiter.db"), "--policy", join(root, "examples", "policies", "soc.yaml")], {
    env: { ...process.env, RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: server.stdout });
  for await (const line of lines) {
    if (line.startsWith("listening on ")) url = line.slice("listening on ".length);
    if (line.startsWith("admin key: ")) admin = line.slice("admin key: ".length);
    if (line === "ready") break;
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

const XSS = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`;

async function signIn(page, key) {
  await page.goto(url + "/login");
  await page.fill("#key", key);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
}

async function noScriptRan(page) {
  assert.equal(await page.evaluate(() => window.__xss), undefined, "agent-supplied HTML executed");
}

test("a reviewer works the queue and the agent receives the modified action", async () => {
  const agent = (await api(admin, "POST", "/v1/keys", { name: "soc-triage-agent", role: "agent" })).body.key;
  const rita = (await api(admin, "POST", "/v1/keys", { name: "rita", role: "reviewer", tags: ["soc_analyst", "engineering", "data_science", "product", "ux"] })).body.key;
  // An escalated action carrying HTML/script payloads everywhere an agent can put text.
  const proposed = await api(agent, "POST", "/v1/decisions", {
    action: { name: "isolate_host", confidence: 0.9, args: { host: `srv-${XSS}`, host_tags: ["server"], note: XSS }, signals: { alert_type: "malware", alert_severity: "high", comment: XSS } },
    trace_id: `trace-${XSS}`,
    context: { alert_id: XSS },
  });
  assert.equal(proposed.status, 201, JSON.stringify(proposed.body));
  assert.equal(proposed.body.verdict, "escalate");
  const id = proposed.body.id;
  const waiting = api(agent, "GET", `/v1/decisions/${id}?wait=60s`);

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.on("dialog", (d) => { throw new Error("a dialog opened: " + d.message()); });
  // Pages need a session.
  await page.goto(url + "/queue");
  assert.match(page.url(), /\/login\?next=/);
  await page.screenshot({ path: join(artifacts, "login.png") });
  await signIn(page, rita);
  assert.match(page.url(), /\/queue$/);
  await page.screenshot({ path: join(artifacts, "queue.png"), fullPage: true });
  await noScriptRan(page);
  // Keyboard: the first row has focus; j/k move, Enter opens.
  await page.keyboard.press("j");
  await page.keyboard.press("k");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  assert.match(page.url(), /\/cases\//);
  await noScriptRan(page);
  assert.ok((await page.textContent("main")).includes("<script>window.__xss=2</script>"), "the payload is shown as text");
  await page.screenshot({ path: join(artifacts, "case.png"), fullPage: true });
  // Click 1 was opening the case; click 2: claim; click 3: submit the modified approval.
  await Promise.all([page.waitForNavigation(), page.click("button[value=claim]")]);
  assert.ok((await page.textContent("main")).includes("Claimed"));
  await page.check("input[value=modify]");
  const args = JSON.parse(await page.inputValue("#args"));
  args.mode = "network_only";
  await page.fill("#args", JSON.stringify(args));
  await page.fill("#rationale", "contain at the network level; keep the server up for forensics");
  await Promise.all([page.waitForNavigation(), page.click("form:has(#rationale) button[type=submit]")]);
  assert.match(page.url(), /\/queue\?msg=/);
  assert.ok((await page.textContent("main")).includes("Decided: allow"));
  const done = await waiting;
  assert.equal(done.body.status, "final");
  assert.equal(done.body.final.action.args.mode, "network_only");
  assert.deepEqual(done.body.final.decided_by, ["rita"]);

  // A review case from that case, worked through the four stages.
  await page.goto(url + `/cases/${proposed.body.case_id}`);
  await Promise.all([page.waitForNavigation(), page.click("button[value=promote]")]);
  assert.match(page.url(), /\/reviews\//);
  await noScriptRan(page);
  const stage = async (name, fill) => {
    const form = page.locator(`form:has(input[name=stage][value=${name}])`);
    await form.locator("xpath=..").locator("summary").click();
    await fill(form);
    await form.locator("select[name=role]").selectOption({ index: 0 });
    await form.locator("textarea[name=rationale]").fill("based on the replay and the decision log");
    await Promise.all([page.waitForNavigation(), form.locator("button[type=submit]").click()]);
    assert.ok((await page.textContent("main")).includes("Entry recorded"), await page.textContent("main"));
  };
  await stage("contextual_analysis", async (f) => {
    await f.locator("textarea[name=steps]").fill("replayed the alert against the staging agent");
    await f.locator("input[name=environment]").fill("staging, prompt v7");
  });
  await stage("trace_inspection", async (f) => {
    await f.locator("textarea[name=note]").fill("isolated a whole server for a single-process infection");
  });
  await stage("impact_assessment", async (f) => {
    await f.locator("textarea[name=entities]").fill("host:srv-web-3");
    await f.locator("textarea[name=technical_correctness]").fill("over-broad containment");
    await f.locator("textarea[name=user_experience]").fill("no outage thanks to the modification");
  });
  await stage("resolution_design", async (f) => {
    await f.locator("input[name=description]").fill("require confirmation before isolate_host on servers");
    await f.locator("input[name=owner]").fill("rita");
    await f.locator("input[name=expected_effect]").fill("no unconfirmed server isolations");
  });
  assert.ok((await page.textContent("main")).includes("the review can close"));
  await page.screenshot({ path: join(artifacts, "review.png"), fullPage: true });
  await page.fill("#close-reason", "policy change backtested and activated");
  await Promise.all([page.waitForNavigation(), page.click("form:has(#close-reason) button[type=submit]")]);
  assert.ok((await page.textContent("main")).includes("Review closed"));
  assert.ok((await page.textContent("main")).includes("state closed"));

  for (const [path, name] of [["/dashboard", "dashboard"], ["/policy", "policy"]]) {
    await page.goto(url + path);
    await noScriptRan(page);
    await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
  }
  // A diff and a backtest from the policy page.
  await Promise.all([page.waitForNavigation(), page.click("form[action='/policy/backtest'] button")]);
  assert.ok((await page.textContent("main")).includes("Backtest"));
  await page.screenshot({ path: join(artifacts, "backtest.png"), fullPage: true });
  // Phones: the queue stays readable at 390 px.
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(url + "/queue");
  await page.screenshot({ path: join(artifacts, "queue-phone.png"), fullPage: true });
  await ctx.close();
});

test("forms refuse requests without the session's CSRF token, and agents cannot sign in", async () => {
  const agent = (await api(admin, "POST", "/v1/keys", { name: "another-agent", role: "agent" })).body.key;
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, agent);
  assert.match(page.url(), /\/login\?err=/);
  assert.ok((await page.textContent("main")).includes("agent keys cannot use the reviewer console"));
  await signIn(page, admin);
  const res = await page.evaluate(async () => {
    const r = await fetch("/logout", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "csrf=forged" });
    return r.status;
  });
  assert.equal(res, 403);
  await ctx.close();
});
