// Single sign-on in headless Chromium against a real OpenID provider
// (oidc-provider from npm, started here on 127.0.0.1): people sign in through
// the provider's login page and get the roles their groups map to; a person
// removed from the group loses the role at their next sign-in; signing out
// signs out of the provider too; and a replayed callback, a tampered ID token,
// one for another audience and an expired one are each refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import { startProvider } from "./oidc-provider.js";
import { callApi } from "./api.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = process.env.ARBITER_BIN || join(root, "target", "debug", "arbiter");
const artifacts = join(root, "target", "browser-artifacts");
mkdirSync(artifacts, { recursive: true });

let server, url, admin, browser, idp;

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

const api = (key, method, path, body) => callApi(url, key, method, path, body);

before(async () => {
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  idp = await startProvider({
    clientId: "arbiter-console",
    clientSecret: "a-client-secret-for-the-test",
    redirectUri: `${url}/sso/callback`,
    postLogoutRedirectUri: `${url}/login`,
    groups: { alice: ["soc-analysts"], bob: ["arbiter-admins"], carol: ["marketing"] },
  });
  const dir = mkdtempSync(join(tmpdir(), "arbiter-sso-"));
  server = spawn(bin, [
    "serve", "--listen", `127.0.0.1:${port}`, "--public-url", url, "--db", join(dir, "arbiter.db"),
    "--policy", join(root, "examples", "policies", "soc.yaml"),
    "--sso-issuer", idp.issuer, "--sso-client-id", "arbiter-console", "--sso-scopes", "email,groups",
    "--sso-group", "soc-analysts=reviewer:soc_analyst", "--sso-group", "arbiter-admins=admin",
    "--sso-label", "Sign in with the test provider", "--key-sign-in", "off",
  ], {
    env: { ...process.env, RUST_LOG: "warn", ARBITER_SSO_CLIENT_SECRET: "a-client-secret-for-the-test" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: server.stdout });
  for await (const line of lines) {
    if (line.startsWith("admin key: ")) admin = line.slice("admin key: ".length);
    if (line === "ready") break;
  }
  assert.ok(admin, "the server exited before it was ready");
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  server?.kill();
  idp?.close();
});

// Sign in through the provider's own pages: Arbiter's button, the provider's
// login form, its consent page (first time only), back to Arbiter.
async function signIn(page, user) {
  await page.goto(url + "/queue");
  assert.match(page.url(), /\/login\?next=/);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(idp.issuer)), page.click("#sso")]);
  if (await page.locator("input[name=login]").count()) {
    await page.fill("input[name=login]", user);
    await page.fill("input[name=password]", "any password");
    await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  }
  if (page.url().startsWith(idp.issuer) && (await page.locator("button[type=submit]").count())) {
    await Promise.all([page.waitForURL((u) => u.href.startsWith(url)), page.click("button[type=submit]")]);
  }
  await page.waitForLoadState("load");
}

test("people sign in through the provider with the roles of their groups, and lose them with the group", async () => {
  // no API key form on this server: people sign in through the provider only
  const ctx0 = await browser.newContext();
  const p0 = await ctx0.newPage();
  await p0.goto(url + "/login");
  assert.equal(await p0.locator("#key").count(), 0, "key sign-in is off");
  assert.ok((await p0.textContent("#sso")).includes("Sign in with the test provider"));
  const form = await fetch(url + "/login", { method: "POST", body: new URLSearchParams({ key: admin, next: "/queue" }), redirect: "manual" });
  assert.match(decodeURIComponent(form.headers.get("location") || ""), /turned off/);
  await ctx0.close();

  // a case for the soc_analyst role
  const agent = (await api(admin, "POST", "/v1/keys", { name: "soc-triage-agent", role: "agent" })).body.key;
  const proposed = await api(agent, "POST", "/v1/decisions", {
    action: { name: "isolate_host", confidence: 0.9, args: { host: "srv-1", host_tags: ["server"] }, signals: { alert_type: "malware", alert_severity: "high" } },
  });
  assert.equal(proposed.body.verdict, "escalate", JSON.stringify(proposed.body));

  // alice (soc-analysts): a reviewer with the soc_analyst tag; the case is in her queue and she answers it
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  const callbacks = [];
  page.on("request", (r) => { if (r.url().startsWith(url + "/sso/callback")) callbacks.push(r.url()); });
  await signIn(page, "alice");
  await page.waitForURL(url + "/queue");
  assert.ok((await page.textContent(".who")).includes("alice"), await page.textContent("header"));
  assert.ok((await page.textContent(".who")).includes("soc_analyst"));
  await page.screenshot({ path: join(artifacts, "sso-queue.png"), fullPage: true });
  await page.goto(url + `/cases/${proposed.body.case_id}`);
  await Promise.all([page.waitForNavigation(), page.click("button[value=claim]")]);
  await page.check("input[value=approve]");
  await page.fill("#rationale", "confirmed malware on the server; isolate it");
  await Promise.all([page.waitForNavigation(), page.click("form:has(#rationale) button[type=submit]")]);
  const decided = await api(admin, "GET", `/v1/decisions/${proposed.body.id}`);
  assert.deepEqual(decided.body.final.decided_by, ["alice"], "the decision names the person, not a key");
  const answered = (await api(admin, "GET", `/v1/audit/events?limit=100`)).body;
  const evs = (answered.events || answered).filter((e) => e.case_id === proposed.body.case_id && e.kind === "case.decided");
  assert.equal(evs.length, 1);
  assert.equal(evs[0].actor, "alice");

  // the callback, replayed after it was used, is refused (its state was consumed)
  assert.equal(callbacks.length, 1);
  const replay = await page.goto(callbacks[0]);
  assert.equal(replay.status(), 403);
  assert.match(await page.textContent("main"), /already used|no sign-in is under way/);

  // alice is removed from the group: her session lasts at most its lifetime; at her next sign-in she has no role
  idp.setGroups("alice", []);
  await page.goto(url + "/queue");
  // sign-out ends the session here and at the provider (RP-initiated logout)
  await Promise.all([page.waitForURL((u) => u.href.startsWith(idp.issuer)), page.click("form[action='/logout'] button")]);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(url + "/login")), page.click("button[name=logout]")]);
  await signIn(page, "alice");
  assert.match(await page.textContent("main"), /alice is in none of the groups that give a role here/);
  await page.goto(url + "/queue");
  assert.match(page.url(), /\/login/, "no session was started");
  await ctx.close();

  // bob (arbiter-admins) is an admin: every open case is in his queue, whatever its reviewer roles;
  // carol (an unmapped group) cannot sign in
  const second = await api(agent, "POST", "/v1/decisions", {
    action: { name: "isolate_host", confidence: 0.9, args: { host: "srv-2", host_tags: ["server"] }, signals: { alert_type: "malware", alert_severity: "high" } },
  });
  assert.equal(second.body.verdict, "escalate");
  for (const [user, expect] of [["bob", /admin/], ["carol", /none of the groups that give a role here \(soc-analysts, arbiter-admins\); the provider sent the groups marketing/]]) {
    const c = await browser.newContext();
    const p = await c.newPage();
    await signIn(p, user);
    if (user === "bob") {
      await p.waitForURL(url + "/queue");
      assert.ok((await p.textContent(".who")).includes("bob"));
      const rows = await p.locator("#queue-rows a[data-case]").evaluateAll((as) => as.map((a) => a.dataset.case));
      assert.deepEqual(rows, [second.body.case_id]);
    } else {
      assert.match(await p.textContent("main"), expect);
    }
    await c.close();
  }
});

test("a tampered ID token, one for another client and an expired one are refused", async () => {
  for (const [mode, why] of [
    ["tampered", /signature does not verify/],
    ["wrong-audience", /meant for \["another-client"\], not for this client `arbiter-console`/],
    ["expired", /it expired 36\d\d s ago/],
  ]) {
    idp.setMode(mode);
    const c = await browser.newContext();
    const p = await c.newPage();
    await signIn(p, "bob");
    const text = await p.textContent("main");
    assert.match(text, /Sign-in refused/, `${mode}: ${text}`);
    assert.match(text, why, `${mode}: ${text}`);
    await p.goto(url + "/queue");
    assert.match(p.url(), /\/login/, `${mode}: no session was started`);
    await p.screenshot({ path: join(artifacts, `sso-refused-${mode}.png`) });
    await c.close();
  }
  idp.setMode(null);
});
