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
import { callApi } from "./api.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = process.env.ARBITER_BIN || join(root, "target", "debug", "arbiter");
const artifacts = join(root, "target", "browser-artifacts");
mkdirSync(artifacts, { recursive: true });

let server, url, admin, browser;

const api = (key, method, path, body) => callApi(url, key, method, path, body);

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
  assert.ok(url && admin, "the server exited before it was ready");
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
}, { timeout: 60_000 }); // a server that never prints `ready` fails the run instead of hanging it

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

// The page's CSP alone would stop the payloads from running, so that is not
// proof of escaping: check that the injected markup does not exist as
// elements at all, and check the CSP header separately.
async function noInjectedMarkup(page) {
  assert.equal(await page.evaluate(() => window.__xss), undefined, "agent-supplied HTML executed");
  const injected = await page.evaluate(() =>
    document.querySelectorAll('main img[src="x"], main [onerror], main script').length);
  assert.equal(injected, 0, "agent-supplied HTML became elements");
}

// Open a console page: it answers 200 with the security headers and a heading.
async function visit(page, path) {
  const res = await page.goto(url + path);
  await checkPage(page, res);
  return res;
}

async function checkPage(page, res) {
  assert.equal(res.status(), 200, `${page.url()} answered ${res.status()}`);
  const h = await res.allHeaders();
  assert.match(h["content-security-policy"] || "", /script-src 'self'/, page.url());
  assert.doesNotMatch(h["content-security-policy"] || "", /unsafe-inline/, page.url());
  assert.equal(h["x-content-type-options"], "nosniff", page.url());
  assert.equal(h["cache-control"], "no-store", page.url());
  assert.ok((await page.locator("main h1").count()) >= 1, `${page.url()} has no heading`);
  await noInjectedMarkup(page);
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
  // Two calmer cases below it, so that moving through the queue means something.
  for (const host of ["ws-1", "ws-2"]) {
    const calm = await api(agent, "POST", "/v1/decisions", {
      action: { name: "isolate_host", confidence: 0.9, args: { host, host_tags: ["workstation"] }, signals: { alert_type: "malware", alert_severity: "medium" } },
    });
    assert.equal(calm.body.verdict, "escalate", JSON.stringify(calm.body));
  }

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.on("dialog", (d) => { throw new Error("a dialog opened: " + d.message()); });
  // Pages need a session.
  await page.goto(url + "/queue");
  assert.match(page.url(), /\/login\?next=/);
  await page.screenshot({ path: join(artifacts, "login.png") });
  await signIn(page, rita);
  assert.match(page.url(), /\/queue$/);
  await checkPage(page, await page.reload());
  await page.screenshot({ path: join(artifacts, "queue.png"), fullPage: true });
  // Keyboard: the first row has focus; j/k move, Enter opens the focused one.
  const rows = await page.locator("#queue-rows a[data-case]").evaluateAll((as) => as.map((a) => a.dataset.case));
  assert.equal(rows.length, 3);
  const focused = () => page.evaluate(() => document.activeElement.dataset.case);
  assert.equal(await focused(), rows[0]);
  await page.keyboard.press("j");
  assert.equal(await focused(), rows[1]);
  await page.keyboard.press("j");
  await page.keyboard.press("j");
  assert.equal(await focused(), rows[2], "j stops at the last row");
  await page.keyboard.press("k");
  await page.keyboard.press("k");
  assert.equal(await focused(), rows[0]);
  assert.equal(rows[0], proposed.body.case_id, "the most urgent case comes first");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  assert.match(page.url(), new RegExp(`/cases/${rows[0]}$`));
  await checkPage(page, await page.reload());
  assert.ok((await page.textContent("main")).includes("<script>window.__xss=2</script>"), "the payload is shown as text");
  assert.ok((await page.textContent("#blast-radius")).includes("in the last hour"), "the case shows its blast radius");
  assert.ok((await page.textContent("#similar")).includes("Similar past cases"));
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
  const reviewUrl = page.url();
  await checkPage(page, await page.reload());
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
  // stages still missing: said in words, and the review cannot be closed yet
  const cannot = await page.textContent("#cannot-close");
  assert.match(cannot, /an entry for the trace inspection; an entry for the impact assessment/, cannot);
  assert.doesNotMatch(cannot, /impact_assessment/, "stage names in prose, not wire names");
  assert.ok(await page.locator("form:has(input[name=op][value=close]) button[type=submit]").isDisabled(), "close is disabled");
  await stage("trace_inspection", async (f) => {
    await f.locator("textarea[name=note]").fill("isolated a whole server for a single-process infection");
  });
  await stage("impact_assessment", async (f) => {
    await f.locator("textarea[name=entities]").fill("host:srv-web-3");
    await f.locator("textarea[name=technical_correctness]").fill("over-broad containment");
    await f.locator("textarea[name=user_experience]").fill("no outage thanks to the modification");
  });
  // The policy change is carried by a stored version; the review closes once its backtest passes.
  const version = (await api(admin, "GET", "/v1/policy")).body.hash;
  await stage("resolution_design", async (f) => {
    await f.locator("input[name=description]").fill("require confirmation before isolate_host on servers");
    await f.locator("input[name=owner]").fill("rita");
    await f.locator("input[name=expected_effect]").fill("no unconfirmed server isolations");
    await f.locator("input[name=policy_version]").fill(version);
  });
  assert.ok((await page.textContent("main")).includes("a backtest of its policy version"), await page.textContent("main"));
  await Promise.all([page.waitForNavigation(), page.click("button[value=check]")]);
  assert.ok((await page.textContent("main")).includes("Backtest passed"), await page.textContent("main"));
  assert.ok((await page.textContent("main")).includes("the review can close"));
  await page.screenshot({ path: join(artifacts, "review.png"), fullPage: true });
  await page.fill("#close-reason", "policy change backtested and activated");
  await Promise.all([page.waitForNavigation(), page.click("form:has(#close-reason) button[type=submit]")]);
  assert.ok((await page.textContent("main")).includes("Review closed"));
  assert.ok((await page.textContent("main")).includes("state closed"));

  // The closed review is a lesson: find it, publish it, search for it.
  await visit(page, "/lessons");
  await Promise.all([page.waitForNavigation(), page.click("main table a[href^='/lessons/lesson-']")]);
  await checkPage(page, await page.reload());
  const lessonUrl = page.url();
  assert.ok((await page.textContent("main")).includes("Did it stop?"));
  await page.check("input[name=publish]");
  await page.fill("#guidance", "Prefer network-only containment for servers.");
  await Promise.all([page.waitForNavigation(), page.click("form:has(#guidance) button[type=submit]")]);
  assert.ok((await page.textContent("main")).includes("Lesson saved"), await page.textContent("main"));
  assert.ok((await page.textContent("main")).includes("lesson.updated"));
  await page.screenshot({ path: join(artifacts, "lesson.png"), fullPage: true });
  const guidance = await api(agent, "GET", "/v1/guidance?action=isolate_host");
  assert.ok(guidance.body.items.some((i) => i.text === "Prefer network-only containment for servers."), JSON.stringify(guidance.body));
  await visit(page, "/lessons");
  await page.fill("#q", "forensics");
  await Promise.all([page.waitForNavigation(), page.click("form.search button")]);
  await checkPage(page, await page.reload());
  assert.ok((await page.locator("ol.hits li").count()) >= 1, "the reviewer's rationale is found");
  await page.screenshot({ path: join(artifacts, "search.png"), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.click("ol.hits a[href^='/decisions/']")]);
  assert.match(page.url(), /\/cases\//, "a decision hit opens its case");
  await visit(page, "/suggestions");

  for (const [path, name] of [["/dashboard", "dashboard"], ["/policy", "policy"]]) {
    await visit(page, path);
    await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
  }
  // A diff and a backtest from the policy page.
  const [bt] = await Promise.all([page.waitForNavigation(), page.click("form[action='/policy/backtest'] button")]);
  await checkPage(page, bt);
  assert.ok((await page.textContent("main")).includes("Backtest"));
  await page.screenshot({ path: join(artifacts, "backtest.png"), fullPage: true });
  // Phones: every page fits 390 px without sideways scrolling.
  await page.setViewportSize({ width: 390, height: 800 });
  for (const [path, name] of [["/queue", "queue"], [`/cases/${proposed.body.case_id}`, "case"], [new URL(reviewUrl).pathname, "review"], ["/dashboard", "dashboard"], ["/policy", "policy"], [new URL(lessonUrl).pathname, "lesson"], ["/search?q=forensics", "search"], ["/suggestions", "suggestions"], ["/cases", "cases-history"], ["/reviews?state=open,closed", "reviews"], ["/lessons", "lessons"]]) {
    await visit(page, path);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    const widest = await page.evaluate(() => {
      const over = [...document.querySelectorAll("main *")].filter((e) => e.getBoundingClientRect().right > 390);
      return over.slice(-3).map((e) => `${e.tagName.toLowerCase()}.${e.className} (${Math.round(e.getBoundingClientRect().right)} px): ${e.textContent.slice(0, 60)}`).join("; ");
    });
    assert.ok(width <= 390, `${path} is ${width} px wide on a phone: ${widest}`);
    await page.screenshot({ path: join(artifacts, `${name}-phone.png`), fullPage: true });
  }
  await ctx.close();
});

test("forms refuse requests without the session's CSRF token, and agents cannot sign in", async () => {
  const agent = (await api(admin, "POST", "/v1/keys", { name: "another-agent", role: "agent" })).body.key;
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, agent);
  assert.match(page.url(), /\/login\?(next=[^&]*&)?err=/);
  assert.ok((await page.textContent("main")).includes("Agent keys cannot use the reviewer console"));
  await signIn(page, admin);
  // Every form checks the token: sign-out, a case's decision, a review's stages, the backtest.
  const agentKey = (await api(admin, "POST", "/v1/keys", { name: "csrf-agent", role: "agent" })).body.key;
  const esc = await api(agentKey, "POST", "/v1/decisions", {
    action: { name: "isolate_host", confidence: 0.5, args: { host: "ws-9", host_tags: ["workstation"] } },
  });
  const review = await api(admin, "POST", "/v1/reviews", { title: "csrf check", from_case: esc.body.case_id });
  const forms = [
    ["/logout", "csrf=forged"],
    [`/cases/${esc.body.case_id}/act`, "csrf=forged&op=decide&decision=approve&rationale=approved+by+a+forged+form"],
    [`/reviews/${review.body.id}/act`, "csrf=forged&op=close&reason=closed+by+a+forged+form"],
    ["/policy/backtest", "csrf=forged"],
    ["/policy/activate", "csrf=forged&hash=0000"],
    [`/cases/${esc.body.case_id}/act`, "csrf=forged&op=outcome&correct=true"],
  ];
  for (const [path, body] of forms) {
    const status = await page.evaluate(async ([path, body]) => {
      const r = await fetch(path, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body });
      return r.status;
    }, [path, body]);
    assert.equal(status, 403, `${path} accepted a forged token`);
  }
  const still = await api(admin, "GET", `/v1/cases/${esc.body.case_id}`);
  assert.equal(still.body.state, "open", "the forged decision did nothing");
  await ctx.close();
});

test("a decided case shows its record and takes an outcome; history, policy activation and pages for people", async () => {
  const agent = (await api(admin, "POST", "/v1/keys", { name: "history-agent", role: "agent" })).body.key;
  const ann = (await api(admin, "POST", "/v1/keys", { name: "ann", role: "reviewer", tags: ["soc_analyst"] })).body.key;
  // The agent's run arrives over OTLP (JSON), with markup in its attributes; the proposal names its tool call.
  const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const attr = (key, value) => ({ key, value: typeof value === "number" ? { intValue: String(value) } : { stringValue: value } });
  const otlp = await fetch(url + "/v1/traces", {
    method: "POST",
    headers: { authorization: `Bearer ${agent}`, "content-type": "application/json" },
    body: JSON.stringify({ resourceSpans: [{ resource: { attributes: [attr("service.name", "triage-agent")] }, scopeSpans: [{ spans: [
      { traceId: trace, spanId: "00f067aa0ba902b7", name: "invoke_agent triage", startTimeUnixNano: "1764150000000000000", endTimeUnixNano: "1764150003000000000",
        attributes: [attr("gen_ai.operation.name", "invoke_agent")] },
      { traceId: trace, spanId: "00f067aa0ba902b8", parentSpanId: "00f067aa0ba902b7", name: "chat gpt-4.1", startTimeUnixNano: "1764150000500000000", endTimeUnixNano: "1764150001500000000",
        attributes: [attr("gen_ai.operation.name", "chat"), attr("gen_ai.request.model", "gpt-4.1"), attr("gen_ai.usage.input_tokens", 812), attr("gen_ai.usage.output_tokens", 64), attr("gen_ai.input.messages", `alert on ws-0042 ${XSS}`)] },
      { traceId: trace, spanId: "00f067aa0ba902b9", parentSpanId: "00f067aa0ba902b7", name: `execute_tool isolate_host ${XSS}`, startTimeUnixNano: "1764150002000000000", endTimeUnixNano: "1764150002500000000",
        attributes: [attr("gen_ai.operation.name", "execute_tool"), attr("gen_ai.tool.name", "isolate_host"), attr("gen_ai.tool.call.id", "call_42"), attr("gen_ai.tool.call.arguments", `{"host":"ws-0042","note":"${XSS.replaceAll('"', "'")}"}`)] },
    ] }] }] }),
  });
  assert.equal(otlp.status, 200, await otlp.text());
  const proposed = await api(agent, "POST", "/v1/decisions", {
    action: { name: "isolate_host", confidence: 0.5, args: { host: "ws-0042", host_tags: ["workstation"] }, signals: { alert_type: "malware", alert_severity: "low" } },
    trace_id: trace,
    context: { tool_call_id: "call_42" },
  });
  assert.equal(proposed.body.verdict, "escalate", JSON.stringify(proposed.body));
  // A reader in Tokyo: times show in their zone, the UTC value on hover.
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: "Asia/Tokyo", locale: "en-GB" });
  const page = await ctx.newPage();

  // A bad key gets a sentence for a person, and the hint is a command that works.
  await signIn(page, "not-a-key");
  assert.match(page.url(), /\/login\?/);
  const login = await page.textContent("main");
  assert.ok(login.includes("That is not an Arbiter API key"), login);
  assert.ok(!login.includes("Bearer"), "no header formats for people");
  assert.ok(login.includes("arbiter keys create --name ann --role reviewer --tag soc_analyst"), login);
  await page.screenshot({ path: join(artifacts, "login-bad-key.png") });

  await signIn(page, ann);
  // The queue names the subject and sets the confidence against the threshold.
  const row = await page.textContent(`#queue-rows tr:has(a[data-case="${proposed.body.case_id}"])`);
  assert.ok(row.includes("ws-0042") && row.includes("0.50 / 0.95"), row);
  await visit(page, `/cases/${proposed.body.case_id}`);
  assert.equal(await page.locator("input[name=decision]:checked").count(), 0, "nothing is pre-selected");
  // The agent run: the tree, the decision's tool call marked, the model's tokens one click away; no markup ran.
  const run = await page.textContent("#agent-run");
  assert.ok(run.includes("3 spans") && run.includes("812 → 64 tokens"), run);
  assert.equal(await page.locator("#agent-run li.decision").count(), 1, "the decision's tool call is marked");
  assert.ok((await page.textContent("#agent-run li.decision")).includes("execute_tool isolate_host"));
  assert.equal(await page.locator("#agent-run li.span svg.timeline").count(), 3, "a timeline bar per span");
  await page.click("#span-00f067aa0ba902b8 summary");
  assert.ok((await page.textContent("#span-00f067aa0ba902b8")).includes("812 in, 64 out"));
  await page.locator("#agent-run").screenshot({ path: join(artifacts, "agent-run.png") });
  await page.setViewportSize({ width: 390, height: 800 });
  assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 390, "the agent run fits a phone");
  await page.setViewportSize({ width: 1280, height: 900 });
  const stamp = page.locator("main time[datetime]").first();
  assert.match(await stamp.getAttribute("title"), / UTC$/);
  assert.ok(!(await stamp.textContent()).includes("UTC"), "times show in the reader's zone");
  await page.check("input[value=reject]");
  await page.fill("#rationale", "workstation is the backup agent's host; benign scheduled job");
  await page.fill("#failure_modes", "wrong_target");
  await Promise.all([page.waitForNavigation(), page.click("form:has(#rationale) button[type=submit]")]);
  assert.ok((await page.textContent("main")).includes("Decided: deny"), await page.textContent("main"));

  // The decided case shows its record; the SLA countdown has stopped.
  await visit(page, `/cases/${proposed.body.case_id}`);
  const record = await page.textContent("#decision");
  for (const text of ["denied by reviewers", "ann rejected", "ann", "benign scheduled job", "wrong_target"]) assert.ok(record.includes(text), `${text} in ${record}`);
  assert.equal(await page.locator("main [data-deadline]").count(), 0, "no SLA countdown on a decided case");
  assert.ok(!(await page.textContent("main")).includes("so far"), "no approval count on a decided case");
  // Its outcome, from the form.
  await page.check("#outcome input[value=false]");
  await page.fill("#outcome-note", "alert confirmed by the EDR team");
  await Promise.all([page.waitForNavigation(), page.click("#outcome button[type=submit]")]);
  const outcome = await page.textContent("#outcome");
  assert.ok(outcome.includes("wrong") && outcome.includes("alert confirmed by the EDR team"), outcome);
  assert.equal((await api(admin, "GET", `/v1/decisions/${proposed.body.id}`)).body.outcome.correct, false);
  await page.screenshot({ path: join(artifacts, "decided-case.png"), fullPage: true });

  // History: filter decided cases; every row links to its case.
  await visit(page, "/cases");
  await page.fill("#failure_mode", "wrong_target");
  await page.fill("#q", "backup");
  await Promise.all([page.waitForNavigation(), page.click("form.filters button[type=submit]")]);
  await checkPage(page, await page.reload());
  assert.equal(await page.locator(`main tbody a[href="/cases/${proposed.body.case_id}"]`).count(), 1);
  await page.screenshot({ path: join(artifacts, "cases-history.png"), fullPage: true });
  await page.fill("#failure_mode", "no_such_mode");
  await Promise.all([page.waitForNavigation(), page.click("form.filters button[type=submit]")]);
  assert.ok((await page.textContent("main tbody")).includes("No case matches"));
  await visit(page, "/reviews?state=open,closed");
  assert.ok((await page.locator("main tbody a[href^='/reviews/']").count()) >= 1, "the first test's review is listed");
  await page.screenshot({ path: join(artifacts, "reviews.png"), fullPage: true });

  // A page that does not exist: 404 with the navigation.
  const missing = await page.goto(url + "/no-such-page");
  assert.equal(missing.status(), 404);
  assert.ok((await page.locator("nav a[href='/queue']").count()) >= 1, "the 404 page has navigation");
  assert.ok((await page.textContent("main")).includes("Page not found"));
  await page.screenshot({ path: join(artifacts, "404.png"), fullPage: true });

  // The dashboard's axes read as times and percentages.
  await visit(page, "/dashboard");
  const ticks = await page.locator("main svg text").allTextContents();
  assert.ok(ticks.some((t) => /%$/.test(t.trim())), ticks.join(" | "));
  assert.ok(!ticks.some((t) => /^-?\d+\.\d{3,}$/.test(t.trim())), `raw numbers on an axis: ${ticks.join(" | ")}`);
  await ctx.close();

  // An admin stores a draft, compares it, activates it after the backtest, and rolls back.
  const source = (await api(admin, "GET", "/v1/policy")).body.source;
  const draftYaml = source.replace("auto_allow_at: 0.95", "auto_allow_at: 0.93");
  assert.notEqual(draftYaml, source);
  const stored = await fetch(url + "/v1/policy/versions", { method: "POST", headers: { authorization: `Bearer ${admin}`, "content-type": "application/yaml" }, body: draftYaml });
  const storedText = await stored.text();
  assert.equal(stored.status, 201, storedText);
  const draft = JSON.parse(storedText).hash;
  const adminCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const p2 = await adminCtx.newPage();
  await signIn(p2, admin);
  await visit(p2, "/policy");
  await Promise.all([p2.waitForNavigation(), p2.click("a:has-text('diff with active')")]);
  assert.match(await p2.textContent("main"), /1 line\(s\) added, 1 removed, in 1 place\(s\)/);
  await Promise.all([p2.waitForNavigation(), p2.click(`a[href="/policy?activate=${draft}"]`)]);
  await checkPage(p2, await p2.reload());
  const card = await p2.textContent("section.confirm");
  assert.ok(card.includes("labelled decisions"), card);
  await p2.screenshot({ path: join(artifacts, "policy-activate.png"), fullPage: true });
  await Promise.all([p2.waitForNavigation(), p2.click("section.confirm button[type=submit]")]);
  assert.equal((await api(admin, "GET", "/v1/policy")).body.hash, draft, await p2.textContent("main"));
  await Promise.all([p2.waitForNavigation(), p2.click("a:has-text('Roll back to')")]);
  assert.ok((await p2.textContent("section.confirm")).includes("Roll back to"));
  await Promise.all([p2.waitForNavigation(), p2.click("section.confirm button[type=submit]")]);
  assert.notEqual((await api(admin, "GET", "/v1/policy")).body.hash, draft, "rolled back");
  await adminCtx.close();
});

// The SLA countdown runs from the server's clock: a browser whose own clock is
// hours off (ahead or behind) shows what the server and the CLI say.
test("the SLA countdown follows the server's clock, not the browser's", async () => {
  const agent = (await api(admin, "POST", "/v1/keys", { name: "skew-agent", role: "agent" })).body.key;
  const sam = (await api(admin, "POST", "/v1/keys", { name: "sam-skew", role: "reviewer", tags: ["soc_analyst"] })).body.key;
  const proposed = await api(agent, "POST", "/v1/decisions", {
    action: { name: "isolate_host", confidence: 0.9, args: { host: "ws-skew-1", host_tags: ["workstation"] }, signals: { alert_type: "malware", alert_severity: "medium" } },
  });
  assert.equal(proposed.body.verdict, "escalate", JSON.stringify(proposed.body));
  const seconds = (text) => {
    const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text.trim());
    assert.ok(m, `a countdown, not "${text}"`);
    return Number(m[1] || 0) * 3600 + Number(m[2] || 0) * 60 + Number(m[3] || 0);
  };
  for (const skewHours of [8, -8]) {
    const ctx = await browser.newContext();
    await ctx.addInitScript((offset) => {
      const realNow = Date.now;
      Date.now = () => realNow() + offset;
    }, skewHours * 3600_000);
    const page = await ctx.newPage();
    await signIn(page, sam);
    const cell = page.locator(`#queue-rows tr:has(a[data-case="${proposed.body.case_id}"]) [data-deadline]`);
    await page.waitForTimeout(1500); // the countdown has ticked
    const shown = (await cell.textContent()).trim();
    assert.doesNotMatch(shown, /overdue/, `skew ${skewHours}h: ${shown}`);
    const queue = (await api(sam, "GET", "/v1/queue")).body;
    const item = (queue.items || queue).find((i) => i.case.id === proposed.body.case_id);
    const server = item.sla_left_ms / 1000;
    assert.ok(Math.abs(seconds(shown) - server) <= 5, `skew ${skewHours}h: the page says ${shown}, the server ${server}s`);
    await ctx.close();
  }
});

// Keyboard on a case page: a / r / m choose the answer and put the cursor
// where the reviewer writes next; typing there does not trigger them.
test("a, r and m choose the answer from the keyboard", async () => {
  const agent = (await api(admin, "POST", "/v1/keys", { name: "keys-agent", role: "agent" })).body.key;
  const kim = (await api(admin, "POST", "/v1/keys", { name: "kim-keys", role: "reviewer", tags: ["soc_analyst"] })).body.key;
  const proposed = await api(agent, "POST", "/v1/decisions", {
    action: { name: "isolate_host", confidence: 0.9, args: { host: "ws-keys-1", host_tags: ["workstation"] }, signals: { alert_type: "malware", alert_severity: "medium" } },
  });
  assert.equal(proposed.body.verdict, "escalate", JSON.stringify(proposed.body));
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, kim);
  await page.goto(url + `/cases/${proposed.body.case_id}`);
  const checked = () => page.evaluate(() => document.querySelector("input[name=decision]:checked")?.value);
  const focused = () => page.evaluate(() => document.activeElement.id);
  await page.keyboard.press("r");
  assert.equal(await checked(), "reject");
  assert.equal(await focused(), "rationale");
  await page.keyboard.type("a rationale typed here does not switch the answer");
  assert.equal(await checked(), "reject", "typing in the rationale is typing");
  await page.locator("h1").first().click();
  await page.keyboard.press("m");
  assert.equal(await checked(), "modify");
  assert.equal(await focused(), "args");
  assert.equal(await page.locator("#modify-args").isHidden(), false, "the arguments editor shows");
  await page.locator("h1").first().click();
  await page.keyboard.press("a");
  assert.equal(await checked(), "approve");
  assert.equal(await focused(), "rationale");
  await ctx.close();
});
