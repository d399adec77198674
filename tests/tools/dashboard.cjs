// Drives the dashboard in Debian's chromium with playwright-core, for tests/it/dashboard.rs.
//
//   node dashboard.cjs test URL ADMIN_TOKEN TASKS_TOKEN
//       The end-to-end walk. Prints `STEP need-node` and waits for a line on stdin (the
//       test starts a worker then), prints `STEP task <id>` for the task it submitted,
//       `STEP output` and waits (the test lets the running `progress` task print its second
//       line), `STEP restart` and waits (the test restarts the coordinator), `STEP
//       secret-deleted` once it set a secret through the form and deleted it, and `OK` at the end;
//       any failed expectation exits 1 with the reason.
//   node dashboard.cjs screenshots URL ADMIN_TOKEN OUT_DIR
//       Saves the main pages as PNG (desktop, a task, a phone) into OUT_DIR.
//   node dashboard.cjs lifetime URL ADMIN_TOKEN
//       Against a coordinator whose streams live 1 s: the page stays live across planned
//       stream ends, shows each task event once, and follows a running `ticker` task's output
//       across them: for each line it prints `STEP tick N` once it shows line N and its output
//       stream has been reopened since, and waits for a line on stdin (the test lets the task
//       print the next). Prints `OK` at the end.
//   node dashboard.cjs skills URL ADMIN_TOKEN
//       The Skills view: waits until `summarize` shows on w1 and w2 with one version, prints
//       `STEP drift` and waits (the test changes w2's copy), then waits until the row and the
//       card's note say drift without a reload, and prints `STEP digests <JSON list>` with the
//       versions the row shows, then `OK`.
//   node dashboard.cjs workflow URL ADMIN_TOKEN WORKFLOW_TASK_ID
//       Opens the workflow task (fetch, then summarize, which needs it): its dialog lists
//       the steps with their states and needs; prints `STEP running` once fetch shows
//       running and summarize pending, and waits (the test lets fetch finish); then waits,
//       without a reload, until both steps and the workflow show completed. Prints `OK`.
//   node dashboard.cjs attack URL
//       Against a coordinator with auth off: pages of other origins (another port, another
//       host name, a DNS-rebinding page naming the coordinator's port) try to create a task
//       and a node (text/plain fetches, a text/plain form post) and to read tasks, nodes and
//       the backup; a page of the coordinator's own origin is the control. Prints one JSON
//       line with what each page saw.
//   node dashboard.cjs paint URL RUNS [TOKEN]
//       Loads the page RUNS times in fresh contexts and prints Chromium's paint timings
//       (first-paint, first-contentful-paint, DOMContentLoaded, load) as JSON; with a
//       token, logged in, also when the first data (the summary) was shown.
//
// Environment: PLAYWRIGHT_CORE (the package's folder), CHROMIUM (the executable).
"use strict";

const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");
const readline = require("readline");

// The flags this machine's notes ask for: no sandbox as root, and nothing that reaches out.
const ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  // A host name of the attack pages: resolved to loopback without a DNS server.
  "--host-resolver-rules=MAP rebind.test 127.0.0.1"];
const WAIT = 30000;

const lines = readline.createInterface({ input: process.stdin });
const stdin = lines[Symbol.asyncIterator]();

function expect(ok, what) {
  if (!ok) throw new Error(`expected: ${what}`);
}

async function launch(extra = []) {
  return chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: [...ARGS, ...extra] });
}

// Chromium's own guard against pages reaching loopback from elsewhere (Local Network Access,
// formerly Private Network Access), turned off for the attack pages: the coordinator must
// refuse them itself, as it must for browsers without that guard.
const NO_LOCAL_NETWORK_GUARD = ["--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults,BlockInsecurePrivateNetworkRequests"];

// Console errors, uncaught exceptions and CSP refusals fail the walk. Expected network
// failures do not: refused answers the page handles (a wrong token) and a stream cut by
// the coordinator's restart (the page reconnects).
function watch(page, problems) {
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    const expected = /the server responded with a status of (401|403|404|409)|net::ERR_(INCOMPLETE_CHUNKED_ENCODING|CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE)/;
    if (m.type() === "error" && !expected.test(m.text())) {
      problems.push(`console error: ${m.text()}`);
    }
  });
}

async function login(page, token) {
  await page.fill("#token", token);
  await page.click("#login button[type=submit]");
}

async function walk(url, admin, tasks) {
  const browser = await launch();
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    watch(page, problems);
    // /ui redirects to the page; the login form shows.
    await page.goto(`${url}/ui`);
    expect(new URL(page.url()).pathname === "/", `/ui lands on / (got ${page.url()})`);
    await page.waitForSelector("#login-view:not([hidden])", { timeout: WAIT });
    await page.evaluate(() => { window.__loadedOnce = true; });

    // A wrong token is refused with a message.
    await login(page, "not-a-token-at-all");
    await page.waitForSelector("#login-error:not([hidden])", { timeout: WAIT });
    expect((await page.textContent("#login-error")).includes("not valid"), "a wrong token is called not valid");

    // The tasks token: read, submit, cancel; drain and undrain are disabled with a note.
    await login(page, tasks);
    await page.waitForSelector("#app:not([hidden])", { timeout: WAIT });
    expect((await page.textContent("#role")).includes("tasks token"), "the role says tasks token");
    await page.waitForSelector("#nodes-note:not([hidden])", { timeout: WAIT });
    expect(!page.url().includes(tasks), "the token is not in the URL");
    expect(await page.evaluate(() => sessionStorage.getItem("openclaw.token")) !== null, "the token is in sessionStorage");
    await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT });

    // A node joins: it appears without a reload, and the event is in the activity feed.
    console.log("STEP need-node");
    await stdin.next();
    await page.waitForSelector('#nodes tr[data-node="w1"] .pill.s-online', { timeout: WAIT });
    await page.waitForSelector('#activity li[data-event^="node:"][data-subject="w1"]', { timeout: WAIT });
    expect(await page.isDisabled('#nodes tr[data-node="w1"] button'), "drain is disabled for the tasks token");

    // Submit through the form; the task goes to completed without a reload.
    await page.click("#new-task");
    await page.fill('#submit [name="name"]', "hello from the browser");
    await page.fill('#submit [name="skills"]', "echo");
    await page.fill('#submit [name="parameters"]', '{"greeting": "hi"}');
    await page.click('#submit button[type="submit"]');
    await page.waitForSelector("#task-dialog[open]", { timeout: WAIT });
    const id = (await page.textContent("#task-title")).split("·").pop().trim();
    expect(id.startsWith("task_"), `the task dialog names the task (got ${id})`);
    console.log(`STEP task ${id}`);
    await page.waitForSelector(`#task-dialog .pill.s-completed`, { timeout: WAIT });
    await page.waitForSelector(`#task-dialog ol.events li:has-text("completed")`, { timeout: WAIT });
    await page.click("#task-dialog [data-close]");
    await page.waitForSelector(`#tasks tr[data-task="${id}"][data-status="completed"]`, { timeout: WAIT });
    await page.waitForSelector(`#activity li[data-event="task:completed"][data-subject="${id}"]`, { timeout: WAIT });

    // A schedule added through the API appears without a reload; "Run now" fires it, its
    // event reaches the activity feed, and its last run follows its task to completed.
    const added = await page.evaluate(async (token) => {
      const r = await fetch("/api/v1/schedules", {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ name: "nightly", cron: "0 3 * * *", tz: "Europe/Berlin", task: { name: "nightly", required_skills: ["echo"] } }),
      });
      return r.status;
    }, tasks);
    expect(added === 201, `the schedule was created (got ${added})`);
    await page.waitForSelector('#schedules tr[data-schedule="nightly"][data-status="active"]', { timeout: WAIT });
    expect((await page.textContent('#schedules tr[data-schedule="nightly"]')).includes("cron 0 3 * * * (Europe/Berlin)"), "the row says when it fires");
    await page.click('#schedules tr[data-schedule="nightly"] button:has-text("Run now")');
    await page.waitForSelector('#activity li[data-event="schedule:fired"]', { timeout: WAIT });
    await page.waitForSelector('#schedules tr[data-schedule="nightly"] .last-run:has-text("completed")', { timeout: WAIT });

    // A running task's output shows in its page as it is printed: the first line while the
    // task waits for the test, the second once the test lets it go on.
    await page.click("#new-task");
    await page.fill('#submit [name="name"]', "progress");
    await page.fill('#submit [name="skills"]', "progress");
    await page.click('#submit button[type="submit"]');
    await page.waitForSelector('#task-dialog #output:has-text("step one of two")', { timeout: WAIT });
    expect(!(await page.textContent("#output")).includes("step two of two"), "the second line is not there before it is printed");
    console.log("STEP output");
    await stdin.next();
    await page.waitForSelector('#task-dialog #output:has-text("step two of two")', { timeout: WAIT });
    await page.waitForSelector("#task-dialog .pill.s-completed", { timeout: WAIT });
    await page.click("#task-dialog [data-close]");

    // A task no node can run says why it waits, and is cancelled from its page.
    await page.click("#new-task");
    await page.fill('#submit [name="name"]', "nobody can");
    await page.fill('#submit [name="skills"]', "whisper");
    await page.click('#submit button[type="submit"]');
    await page.waitForSelector('#task-dialog dd:has-text("no node has skill \'whisper\'")', { timeout: WAIT });
    await page.click('#task-dialog button:has-text("Cancel this task")');
    await page.waitForSelector("#task-dialog .pill.s-cancelled", { timeout: WAIT });
    await page.click("#task-dialog [data-close]");

    // The "Ended" card's parts add up to its count, the cancelled task included (issue 17:
    // "12 — 6 completed, 2 failed" left 4 cancelled out).
    await page.waitForFunction(() => {
      const card = document.querySelector('#summary [data-stat="Ended"]');
      if (!card) return false;
      const total = Number(card.querySelector(".value").textContent);
      const sub = card.querySelector(".sub").textContent;
      const sum = [...sub.matchAll(/(\d+) [a-z ]+/g)].reduce((a, m) => a + Number(m[1]), 0);
      return total === 4 && sum === total && sub.includes("1 cancelled");
    }, null, { timeout: WAIT });

    // Filters: by status.
    await page.selectOption('#filters [name="status"]', "failed");
    await page.waitForSelector(`#tasks tr[data-task="${id}"]`, { state: "detached", timeout: WAIT });
    await page.selectOption('#filters [name="status"]', "completed");
    await page.waitForSelector(`#tasks tr[data-task="${id}"]`, { timeout: WAIT });

    // The coordinator restarts: the page reconnects by itself (resuming after the last event
    // it saw) and keeps following: a second task goes to completed without a reload.
    const connects = await page.getAttribute("#live", "data-connects");
    console.log("STEP restart");
    await stdin.next();
    await page.waitForSelector(`#live[data-state="live"]:not([data-connects="${connects}"])`, { timeout: WAIT });
    await page.click("#new-task");
    await page.fill('#submit [name="name"]', "after the restart");
    await page.fill('#submit [name="skills"]', "echo");
    await page.click('#submit button[type="submit"]');
    await page.waitForSelector("#task-dialog .pill.s-completed", { timeout: WAIT });
    const second = (await page.textContent("#task-title")).split("·").pop().trim();
    await page.click("#task-dialog [data-close]");
    await page.waitForSelector(`#activity li[data-event="task:completed"][data-subject="${second}"]`, { timeout: WAIT });

    // The admin token may drain and undrain; the node's status follows live.
    await page.click("#logout");
    await page.waitForSelector("#login-view:not([hidden])", { timeout: WAIT });
    expect(await page.evaluate(() => sessionStorage.getItem("openclaw.token")) === null, "log out forgets the token");
    await login(page, admin);
    await page.waitForSelector("#nodes-note", { state: "hidden", timeout: WAIT });
    const drain = '#nodes tr[data-node="w1"] button';
    await page.waitForSelector(`${drain}:not([disabled])`, { timeout: WAIT });
    await page.click(drain);
    await page.waitForSelector('#nodes tr[data-node="w1"] .pill.s-maintenance', { timeout: WAIT });
    await page.click(drain);
    await page.waitForSelector('#nodes tr[data-node="w1"] .pill.s-online', { timeout: WAIT });

    // Secrets (admin): set one through the form; it is listed, the value is gone from the
    // page at once and never shown; delete it.
    const value = "dash-secret-value-Zk39Qw";
    await page.waitForSelector("#secrets-card:not([hidden])", { timeout: WAIT });
    await page.fill('#secret-form [name="name"]', "DASH_KEY");
    await page.fill('#secret-form [name="value"]', value);
    await page.fill('#secret-form [name="tags"]', "gpu");
    await page.click('#secret-form button[type="submit"]');
    await page.waitForSelector('#secrets tr[data-secret="DASH_KEY"]', { timeout: WAIT });
    expect((await page.textContent('#secrets tr[data-secret="DASH_KEY"]')).includes("#gpu"), "the scope is listed");
    const shown = await page.evaluate(() => document.documentElement.outerHTML + [...document.querySelectorAll("input, textarea")].map((i) => i.value).join("\n"));
    expect(!shown.includes(value), "the value is nowhere on the page once set");
    page.once("dialog", (d) => d.accept());
    await page.click('#secrets tr[data-secret="DASH_KEY"] button');
    await page.waitForSelector('#secrets tr[data-secret="DASH_KEY"]', { state: "detached", timeout: WAIT });
    console.log("STEP secret-deleted");

    // On a phone the page does not scroll sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 0, `no horizontal scrolling at 390 px (${overflow} px too wide)`);

    expect(await page.evaluate(() => window.__loadedOnce === true), "the page was never reloaded");
    expect(problems.length === 0, `no page errors: ${problems.join("; ")}`);
    console.log("OK");
  } finally {
    await browser.close();
  }
}

async function lifetime(url, admin) {
  const browser = await launch();
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    watch(page, problems);
    let outputStreams = 0;
    page.on("request", (r) => { if (r.url().includes("/output?follow=true")) outputStreams += 1; });
    await page.goto(url);
    await login(page, admin);
    await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT });
    // From now on the page must never leave "live": planned ends are resumed at once.
    await page.evaluate(() => {
      window.__states = [];
      new MutationObserver(() => window.__states.push(document.getElementById("live").dataset.state))
        .observe(document.getElementById("live"), { attributes: true, attributeFilter: ["data-state"] });
    });
    const connects = async () => Number(await page.getAttribute("#live", "data-connects"));
    const reconnected = async (since) =>
      page.waitForFunction((n) => Number(document.getElementById("live").dataset.connects) > n, since, { timeout: WAIT });
    // Tasks submitted across several planned ends: each one's event shows once.
    const ids = [];
    for (let i = 0; i < 4; i++) {
      const before = await connects();
      const t = await page.evaluate(async ([token, n]) => {
        const r = await fetch("/api/v1/tasks", { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: JSON.stringify({ name: `across ${n}`, required_skills: ["nobody-has-it"] }) });
        return r.json();
      }, [admin, i]);
      ids.push(t.task_id);
      await reconnected(before);
    }
    for (const id of ids) {
      await page.waitForSelector(`#activity li[data-event="task:submitted"][data-subject="${id}"]`, { timeout: WAIT });
      const n = await page.locator(`#activity li[data-event="task:submitted"][data-subject="${id}"]`).count();
      expect(n === 1, `task ${id}'s submitted event shows once (${n} times)`);
    }
    // A running task's output, across planned ends of its stream.
    await page.click("#new-task");
    await page.fill('#submit [name="name"]', "ticker");
    await page.fill('#submit [name="skills"]', "ticker");
    await page.click('#submit button[type="submit"]');
    for (let i = 1; i <= 3; i++) {
      await page.waitForSelector(`#task-dialog #output:has-text("tick ${i}")`, { timeout: WAIT });
      const opened = outputStreams;
      const deadline = Date.now() + WAIT;
      while (outputStreams <= opened) {
        expect(Date.now() < deadline, `the output stream is reopened after tick ${i}`);
        await page.waitForTimeout(50);
      }
      console.log(`STEP tick ${i}`);
      await stdin.next();
    }
    await page.waitForSelector("#task-dialog .pill.s-completed", { timeout: WAIT });
    const text = await page.textContent("#output");
    for (let i = 1; i <= 3; i++) {
      const n = text.split(`tick ${i}\n`).length - 1;
      expect(n === 1, `tick ${i} shows once in the output (${n} times): ${JSON.stringify(text)}`);
    }
    const states = await page.evaluate(() => window.__states);
    expect(states.every((s) => s === "live"), `the page stayed live across planned ends (states: ${states.join(", ")})`);
    expect(await connects() >= 5, "the event stream was reopened at each planned end");
    expect(problems.length === 0, `no page errors: ${problems.join("; ")}`);
    console.log("OK");
  } finally {
    await browser.close();
  }
}

// What an attacking page tries against the coordinator at `target` (its origin; "" for
// the page's own): write with simple cross-site requests (no preflight: text/plain bodies,
// no-cors) and a form post, and read. Runs in the page; returns what the page could see.
async function attackInPage([target, sameOrigin]) {
  const seen = {};
  const write = async (what, path, body) => {
    try {
      const r = await fetch(target + path, { method: "POST", mode: sameOrigin ? "same-origin" : "no-cors",
        headers: { "Content-Type": "text/plain" }, body: JSON.stringify(body) });
      seen[what] = { status: r.status, type: r.type, text: r.type === "opaque" ? "" : await r.text() };
    } catch (e) { seen[what] = { error: String(e) }; }
  };
  await write("text/plain task", "/api/v1/tasks", { name: "cross-site task", required_skills: ["x"] });
  await write("text/plain node", "/api/v1/nodes/register",
    { node_id: "intruder", hostname: "evil", platform: "linux", arch: "x64", available_skills: ["x"] });
  if (sameOrigin) {
    try {
      const r = await fetch(target + "/api/v1/tasks", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: "json task", required_skills: ["x"] }) });
      seen["json task"] = { status: r.status, text: (await r.text()).slice(0, 300) };
    } catch (e) { seen["json task"] = { error: String(e) }; }
  }
  for (const path of ["/api/v1/tasks", "/api/v1/nodes", "/api/v1/backup"]) {
    try {
      const r = await fetch(target + path);
      seen["read " + path] = { status: r.status, type: r.type, text: (await r.text()).slice(0, 300) };
    } catch (e) { seen["read " + path] = { error: String(e) }; }
  }
  if (!sameOrigin) {
    // The classic: a form posting text/plain whose one field spells a JSON body.
    const sink = document.createElement("iframe");
    sink.name = "sink";
    document.body.append(sink);
    const form = document.createElement("form");
    Object.assign(form, { method: "post", enctype: "text/plain", target: "sink", action: target + "/api/v1/tasks" });
    const field = document.createElement("input");
    field.name = '{"name":"form post","required_skills":["x"],"pad":"';
    field.value = '"}';
    form.append(field);
    document.body.append(form);
    const loaded = new Promise((r) => sink.addEventListener("load", r, { once: true }));
    form.submit();
    await Promise.race([loaded, new Promise((r) => setTimeout(r, 5000))]);
    seen["form post"] = "sent";
  }
  return seen;
}

async function attack(url) {
  const http = require("http");
  const PAGE = "<!doctype html><meta charset=utf-8><title>a page of another site</title><body>";
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(PAGE);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const other = server.address().port;
  const port = new URL(url).port;
  const browser = await launch(NO_LOCAL_NETWORK_GUARD);
  const report = {};
  try {
    const run = async (name, pageUrl, target, sameOrigin, fulfil) => {
      const context = await browser.newContext();
      const page = await context.newPage();
      if (fulfil) {
        // DNS rebinding: the document comes from the attacker, whose name now resolves to
        // the coordinator; everything the page fetches then goes to the coordinator.
        await page.route(pageUrl, (route) => route.fulfill({ status: 200, contentType: "text/html", body: PAGE }));
      }
      await page.goto(pageUrl);
      report[name] = await page.evaluate(attackInPage, [target, sameOrigin]);
      await context.close();
    };
    await run("another port", `http://127.0.0.1:${other}/`, url, false, false);
    await run("another host name", `http://rebind.test:${other}/`, url, false, false);
    await run("dns rebinding", `http://rebind.test:${port}/`, "", true, true);
    // The control: the coordinator's own origin may do what the others may not.
    await run("own origin", `${url}/`, "", true, false);
  } finally {
    await browser.close();
    server.close();
  }
  console.log(JSON.stringify(report));
}

async function screenshots(url, admin, out) {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
    await page.goto(url);
    await login(page, admin);
    await page.waitForSelector("#nodes tbody tr", { timeout: WAIT });
    await page.waitForSelector("#tasks tbody tr", { timeout: WAIT });
    await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT });
    // One more task through the form, so that the activity feed has something to show.
    await page.click("#new-task");
    await page.fill('#submit [name="name"]', "greet again");
    await page.fill('#submit [name="skills"]', "echo");
    await page.click('#submit button[type="submit"]');
    await page.waitForSelector("#task-dialog .pill.s-completed", { timeout: WAIT });
    await page.click("#task-dialog [data-close]");
    await page.waitForSelector('#activity li[data-event="task:completed"]', { timeout: WAIT });
    await page.waitForTimeout(500); // let the last refetches land before the picture
    await page.screenshot({ path: `${out}/dashboard.png`, fullPage: true });
    await page.click('#tasks tbody tr:has-text("weekly report")');
    await page.waitForSelector("#task-dialog[open] ol.events li", { timeout: WAIT });
    await page.waitForTimeout(300);
    await page.screenshot({ path: `${out}/dashboard-task.png` });
    await page.click("#task-dialog [data-close]");
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    await page.screenshot({ path: `${out}/dashboard-phone.png` });
    console.log("OK");
  } finally {
    await browser.close();
  }
}

async function paint(url, runs, token) {
  const browser = await launch();
  const samples = [];
  try {
    for (let i = 0; i < runs; i++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      // Logged in already (the token in the tab's storage): also time the first data shown,
      // recorded by the page itself when the summary cards appear.
      await page.addInitScript((t) => {
        if (t) sessionStorage.setItem("openclaw.token", t);
        new MutationObserver((_, o) => {
          const s = document.getElementById("summary");
          if (s && s.children.length) { window.__dataAt = performance.now(); o.disconnect(); }
        }).observe(document, { childList: true, subtree: true });
      }, token || "");
      await page.goto(url, { waitUntil: "load" });
      await page.waitForFunction(() => performance.getEntriesByName("first-contentful-paint").length > 0);
      if (token) await page.waitForFunction(() => window.__dataAt !== undefined);
      samples.push(await page.evaluate(() => {
        const p = (n) => performance.getEntriesByName(n)[0].startTime;
        const nav = performance.getEntriesByType("navigation")[0];
        return { first_paint: p("first-paint"), first_contentful_paint: p("first-contentful-paint"),
          dom_content_loaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, data_shown: window.__dataAt ?? null };
      }));
      await context.close();
    }
  } finally {
    await browser.close();
  }
  const median = (k) => {
    const v = samples.map((s) => s[k]).sort((a, b) => a - b);
    return Math.round(v[Math.floor(v.length / 2)] * 10) / 10;
  };
  console.log(JSON.stringify({ runs, median_ms: { first_paint: median("first_paint"),
    first_contentful_paint: median("first_contentful_paint"), dom_content_loaded: median("dom_content_loaded"),
    load: median("load"), data_shown: token ? median("data_shown") : null }, samples }));
}

async function skills(url, admin) {
  const browser = await launch();
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    watch(page, problems);
    await page.goto(url);
    await page.waitForSelector("#login-view:not([hidden])", { timeout: WAIT });
    await login(page, admin);
    await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT });
    const row = '#skills tr[data-skill="summarize"]';
    await page.waitForSelector(`${row}[data-drift="false"] .chip[data-node="w1"]`, { timeout: WAIT });
    await page.waitForSelector(`${row} .chip[data-node="w2"]`, { timeout: WAIT });
    expect(await page.isHidden("#skills-drift"), "no drift note while every node has one version");
    expect((await page.textContent(`${row} td[data-label="Version"]`)).startsWith("sha256:"), "the version is a digest");
    console.log("STEP drift");
    await stdin.next();
    await page.waitForSelector(`${row}[data-drift="true"] .pill.s-drift`, { timeout: WAIT });
    await page.waitForSelector("#skills-drift:not([hidden])", { timeout: WAIT });
    expect((await page.textContent("#skills-drift")).includes("summarize"), "the note names the skill");
    const digests = await page.$$eval(`${row} [data-digest]`, (els) => els.map((e) => e.dataset.digest));
    console.log(`STEP digests ${JSON.stringify(digests)}`);
    const shown = await page.textContent(`${row} td[data-label="Version"]`);
    expect(shown.includes("on w1") && shown.includes("on w2"), `each version names its node (got ${shown})`);
    expect(problems.length === 0, `no page errors: ${problems.join("; ")}`);
    console.log("OK");
  } finally {
    await browser.close();
  }
}

async function workflow(url, admin, id) {
  const browser = await launch();
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    watch(page, problems);
    await page.goto(url);
    await login(page, admin);
    await page.click(`#tasks tr[data-task="${id}"]`, { timeout: WAIT });
    await page.waitForSelector("#task-dialog[open] table.steps", { timeout: WAIT });
    const steps = '#task-dialog table.steps tr[data-step=';
    await page.waitForSelector(`${steps}"fetch"] .pill.s-running`, { timeout: WAIT });
    await page.waitForSelector(`${steps}"summarize"] .pill.s-pending`, { timeout: WAIT });
    expect((await page.textContent(`${steps}"summarize"] td.needs`)).trim() === "fetch", "summarize shows it needs fetch");
    console.log("STEP running");
    await stdin.next();
    await page.waitForSelector(`${steps}"fetch"] .pill.s-completed`, { timeout: WAIT });
    await page.waitForSelector(`${steps}"summarize"] .pill.s-completed`, { timeout: WAIT });
    await page.waitForSelector("#task-dialog dl.fields .pill.s-completed", { timeout: WAIT });
    expect(problems.length === 0, `no page errors: ${problems.join("; ")}`);
    console.log("OK");
  } finally {
    await browser.close();
  }
}

const [mode, ...args] = process.argv.slice(2);
const run = { test: () => walk(...args), screenshots: () => screenshots(...args), lifetime: () => lifetime(...args),
  skills: () => skills(...args), workflow: () => workflow(...args), attack: () => attack(...args), paint: () => paint(args[0], Number(args[1] || 20), args[2]) }[mode];
if (!run) {
  console.error("usage: dashboard.cjs test|screenshots|lifetime|skills|workflow|attack|paint URL ...");
  process.exit(2);
}
run().then(() => process.exit(0), (e) => {
  console.error(`FAILED: ${e.stack || e}`);
  process.exit(1);
});
