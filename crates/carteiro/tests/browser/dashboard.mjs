// The dashboard as its users drive it, in Debian's headless Chromium through
// playwright-core. Run by crates/carteiro/tests/dashboard.rs, which starts
// Carteiro, adds the users, sends mail through SMTP and passes what it set up
// in $CARTEIRO_UI_INPUT (JSON). Every step asserts what a person would see;
// the first failure ends the script with a non-zero exit and its reason.
// Screenshots of every page go to input.shots.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import assert from "node:assert/strict";

const input = JSON.parse(process.env.CARTEIRO_UI_INPUT);
const base = input.base;
const shots = input.shots;
let step = "start";
const log = (text) => console.log(`ok: ${text}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

async function signIn(context, user, password) {
  const page = await context.newPage();
  await page.goto(`${base}/ui/`);
  assert.match(page.url(), /\/ui\/login\?next=/, "an anonymous visit goes to the login page");
  await page.fill("#email", user);
  await page.fill("#password", password);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.equal(new URL(page.url()).pathname, "/ui/", `${user} lands on the overview`);
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

try {
  // --- Sign in: a wrong password first, then the right one.
  step = "login";
  const admin = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  let page = await admin.newPage();
  await page.goto(`${base}/ui/`);
  assert.match(page.url(), /\/ui\/login\?next=\/ui\/$/);
  await shot(page, "01-login");
  await page.fill("#email", input.admin.email);
  await page.fill("#password", "not the password");
  let [answer] = await Promise.all([
    page.waitForNavigation(),
    page.click("button[type=submit]"),
  ]);
  assert.equal(answer.status(), 401);
  assert.match(await page.textContent(".alert"), /Wrong email or password/);
  await shot(page, "02-login-wrong-password");
  await page.fill("#password", input.admin.password);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.equal(new URL(page.url()).pathname, "/ui/");
  const cookies = await admin.cookies();
  const session = cookies.find((c) => c.name === "carteiro_session");
  assert.ok(session, "a session cookie is set");
  assert.equal(session.httpOnly, true, "HttpOnly");
  assert.equal(session.sameSite, "Strict", "SameSite=Strict");
  log("signed in as admin; wrong password refused with 401");

  // --- Overview of the account the mail went to: totals and drawn charts.
  step = "overview";
  await page.goto(`${base}/ui/?account=${input.account}`);
  await page.waitForSelector("body[data-charts=drawn]");
  const received = Number(await page.textContent('[data-total="Received"]'));
  const delivered = Number(await page.textContent('[data-total="Delivered"]'));
  assert.equal(received, input.sent, "the overview counts every recipient received");
  assert.equal(delivered, input.sent, "and delivered");
  assert.equal(await page.locator("#chart-delivery canvas").count(), 1, "the delivery chart is drawn");
  assert.equal(await page.locator("#chart-engagement canvas").count(), 1, "the engagement chart is drawn");
  // The chart's data holds the sends in its last hour.
  const chart = JSON.parse(await page.textContent("#chart-data"));
  const receivedSeries = chart.delivery.find((s) => s.label === "received").values;
  assert.equal(receivedSeries.reduce((a, b) => a + b, 0), input.sent, "the chart's points add up");
  await shot(page, "03-overview");
  // A bad filter value is a message on the page, not an error page.
  answer = await page.goto(`${base}/ui/?account=${input.account}&range=forever`);
  assert.equal(answer.status(), 400);
  assert.match(await page.textContent(".alert"), /Unknown range "forever"/);
  log(`overview shows ${received} received, ${delivered} delivered, charts drawn`);

  // --- Message search and one message's timeline with the remote reply.
  step = "messages";
  await page.goto(`${base}/ui/messages?account=${input.account}`);
  await page.fill("input[name=recipient]", input.recipient);
  await Promise.all([page.waitForNavigation(), page.click("form.search button[type=submit]")]);
  const rows = page.locator("table.messages tbody tr");
  assert.equal(await rows.count(), 1, "one message to this recipient");
  assert.match(await rows.first().textContent(), new RegExp(input.subject));
  await shot(page, "04-messages-search");
  await page.fill("input[name=subject]", "no such subject at all");
  await Promise.all([page.waitForNavigation(), page.click("form.search button[type=submit]")]);
  assert.match(await page.textContent("main"), /No message matches/);
  // The message id box opens the message itself.
  await page.fill("input[name=subject]", "");
  await page.fill("input[name=recipient]", "");
  await page.fill("input[name=message_id]", input.message_id);
  await Promise.all([page.waitForNavigation(), page.click("form.search button[type=submit]")]);
  assert.equal(new URL(page.url()).pathname, `/ui/messages/${input.message_id}`);
  const timeline = await page.textContent("ol.timeline");
  assert.match(timeline, /received/);
  assert.match(timeline, /delivered/);
  assert.ok(timeline.includes(input.delivery_reply), `the timeline shows the remote reply ${input.delivery_reply}`);
  assert.match(await page.textContent("h1"), new RegExp(input.subject));
  await shot(page, "05-message");
  // Its header section as queued, folded away until asked for.
  assert.equal(await page.locator("pre.raw-headers").isVisible(), false, "headers start folded");
  await page.click("details.headers > summary");
  const headers = await page.textContent("pre.raw-headers");
  assert.ok(headers.includes(`X-Carteiro-Id: ${input.message_id}`), "the headers Carteiro added");
  assert.ok(headers.includes(`Subject: ${input.subject}`), "the client's own fields");
  assert.match(await page.textContent("details.headers summary"), /\d+ fields, /);
  await shot(page, "05b-message-headers");
  // A malformed date: a clear message, status 400, never a 500.
  answer = await page.goto(`${base}/ui/messages?account=${input.account}&since=yesterday`);
  assert.equal(answer.status(), 400);
  assert.match(await page.textContent(".alert"), /From \(date\): not an RFC 3339 time or a YYYY-MM-DD date/);
  await shot(page, "06-messages-bad-date");
  log("search by recipient, subject and id; timeline with the delivery reply; headers; bad date explained");

  // --- The queue: a message to a destination that refuses connections
  // waits, deferred; retry it, then delete it from its own page.
  step = "queue";
  execFileSync("swaks", [
    "--server", input.submission, "--tls", "--auth", "PLAIN",
    "--auth-user", input.smtp.user, "--auth-password", input.smtp.password,
    "--from", input.from, "--to", input.slow, "--header", "Subject: Stuck in the queue",
  ], { stdio: "pipe" });
  let reply = "";
  for (let i = 0; i < 100 && !reply; i++) {
    await page.goto(`${base}/ui/queue?account=${input.account}`);
    const row = page.locator('table.destinations tr:has-text("slow.test") td.mono');
    if (await row.count()) reply = (await row.textContent()).trim();
    if (!reply) await page.waitForTimeout(200);
  }
  assert.ok(reply, "the queue page shows the destination's last reply");
  assert.match(await page.textContent("table.queued"), new RegExp(input.slow));
  await shot(page, "07-queue");
  await Promise.all([page.waitForNavigation(), page.click("table.queued button:has-text('Retry')")]);
  assert.equal(new URL(page.url()).pathname, "/ui/queue");
  await page.click(`table.queued a`);
  await page.waitForSelector("#delete-message");
  assert.match(await page.textContent(".alert.warn"), /still waits in this node's queue/);
  assert.match(await page.textContent("ol.timeline"), /deferred/);
  page.once("dialog", (dialog) => dialog.accept());
  await Promise.all([page.waitForNavigation(), page.click("#delete-message")]);
  assert.match(new URL(page.url()).pathname, /^\/ui\/messages\//);
  let afterDelete = "";
  for (let i = 0; i < 50 && !/deleted/.test(afterDelete); i++) {
    await page.reload();
    afterDelete = await page.textContent("ol.timeline");
  }
  assert.match(afterDelete, /deleted/, "the deleted recipient's event is on the timeline");
  assert.equal(await page.locator("#delete-message").count(), 0, "no actions once it left the queue");
  await page.goto(`${base}/ui/queue?account=${input.account}`);
  assert.match(await page.textContent("main"), /Nothing is waiting/);
  log(`queue shows the deferred destination (${reply}); retried; deleted from its page`);

  // --- Domains: the published domain checks ok; a new one is added with its
  // records to publish, all missing; a name with a space is explained.
  step = "domains";
  await page.goto(`${base}/ui/domains?account=${input.account}`);
  await Promise.all([page.waitForNavigation(), page.click("table.domains a:has-text('shop.test')")]);
  assert.match(await page.textContent("#check-summary"), /Everything checked is published/);
  const okCount = await page.locator("table.records .badge.status-ok").count();
  assert.ok(okCount >= 4, `the published records check ok (${okCount})`);
  await shot(page, "08-domain-ok");
  // Rotation: new keys wait, pending, until their records are published;
  // starting to sign with them before is refused. (The test publishes them
  // and activates with the CLI once this script is done.)
  await Promise.all([page.waitForNavigation(), page.click("#rotate-keys")]);
  assert.equal(await page.locator("#dkim-keys .badge.key-pending").count(), 2, "two new keys wait");
  assert.equal(await page.locator("#dkim-keys .badge.key-active").count(), 2, "the old keys still sign");
  assert.match(await page.textContent("#publish-first"), /Publish the new keys' DKIM records first/);
  assert.ok((await page.locator("table.records .badge.status-missing").count()) >= 2, "the new keys' records are missing");
  [answer] = await Promise.all([page.waitForNavigation(), page.click("#activate-keys")]);
  assert.equal(answer.status(), 400);
  assert.match(await page.textContent("#domain-error"), /Publish the new keys' DKIM records first/);
  assert.equal(await page.locator("#dkim-keys .badge.key-active").count(), 2, "nothing changed");
  await shot(page, "08-domain-rotating");
  await page.goto(`${base}/ui/domains?account=${input.account}`);
  await page.fill("#add-domain input[name=name]", "not a domain");
  [answer] = await Promise.all([page.waitForNavigation(), page.click("#add-domain button")]);
  assert.equal(answer.status(), 400);
  assert.match(await page.textContent(".alert"), /Invalid domain "not a domain"/);
  await page.fill("#add-domain input[name=name]", "news.shop.test");
  await Promise.all([page.waitForNavigation(), page.click("#add-domain button")]);
  assert.equal(new URL(page.url()).pathname, "/ui/domains/news.shop.test");
  assert.match(await page.textContent("#check-summary"), /missing or wrong/);
  const dkim = page.locator('table.records tr:has-text("dkim")');
  assert.equal(await dkim.count(), 2, "two DKIM records to publish");
  assert.match(await dkim.first().textContent(), /_domainkey\.news\.shop\.test/);
  assert.match(await dkim.first().textContent(), /missing/);
  await shot(page, "09-domain-new");
  log("domains: the published one checks ok and rotates (activation refused until published), a new one lists its missing records, a bad name is explained");

  // --- API keys: create one, use it with curl, and refuse forged posts.
  step = "keys";
  await page.goto(`${base}/ui/keys?account=${input.account}`);
  const before = await page.locator("table.list tbody tr").count();
  [answer] = await Promise.all([page.waitForNavigation(), page.click("text=Create a key")]);
  assert.equal(answer.status(), 201);
  const key = (await page.textContent("#new-key")).trim();
  assert.match(key, /^crt_[A-Za-z0-9]{40}$/);
  assert.equal(await page.locator("table.list tbody tr").count(), before + 1);
  await shot(page, "10-api-key-created");
  const listed = JSON.parse(execFileSync("curl", [
    "-sS", "--fail-with-body", "-H", `Authorization: Bearer ${key}`,
    `${base}/api/v1/messages?recipient=${encodeURIComponent(input.recipient)}`,
  ]).toString());
  assert.equal(listed.messages.length, 1, "curl with the new key finds the message");
  assert.equal(listed.messages[0].id, input.message_id);
  // A post without this session's token (a forged form) is refused.
  for (const form of [{ account: input.account }, { account: input.account, csrf: "x".repeat(32) }]) {
    const forged = await page.request.post(`${base}/ui/keys`, { form, maxRedirects: 0 });
    assert.equal(forged.status(), 403, "a form without the session's token is refused");
    assert.match(await forged.text(), /Form refused/);
  }
  await page.goto(`${base}/ui/keys?account=${input.account}`);
  assert.equal(await page.locator("table.list tbody tr").count(), before + 1, "no key was made by the forged posts");
  // Revoking it (after the confirmation) makes the API refuse it.
  page.once("dialog", (dialog) => dialog.accept());
  const prefix = key.slice(0, 12);
  await Promise.all([
    page.waitForNavigation(),
    page.click(`form:has(input[name=prefix][value="${prefix}"]) button.danger`),
  ]);
  assert.equal(await page.locator("table.list tbody tr").count(), before, "the key is gone from the list");
  const refused = execFileSync("curl", [
    "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", `Authorization: Bearer ${key}`,
    `${base}/api/v1/messages`,
  ]).toString();
  assert.equal(refused, "401", "a revoked key is refused");
  log("API key created and used with curl, then revoked; forged posts refused with 403");

  // --- SMTP logins: add one with a generated password and send with it.
  step = "logins";
  await page.goto(`${base}/ui/logins?account=${input.account}`);
  assert.match(await page.textContent("table.logins"), new RegExp(input.smtp.user));
  await page.fill("#add-login input[name=username]", "bad name");
  [answer] = await Promise.all([page.waitForNavigation(), page.click("#add-login button")]);
  assert.equal(answer.status(), 400);
  assert.match(await page.textContent(".alert"), /invalid username "bad name"/);
  await page.fill("#add-login input[name=username]", "crm@shop.test");
  [answer] = await Promise.all([page.waitForNavigation(), page.click("#add-login button")]);
  assert.equal(answer.status(), 201);
  const loginPassword = (await page.textContent("#new-login-password")).trim();
  execFileSync("swaks", [
    "--server", input.submission, "--tls", "--auth", "PLAIN",
    // One argument with "=": a generated password may start with "-".
    "--auth-user", "crm@shop.test", `--auth-password=${loginPassword}`,
    "--from", input.from, "--to", "erin@dest.test", "--header", "Subject: From the CRM",
  ], { stdio: "pipe" });
  await shot(page, "11-smtp-logins");
  page.once("dialog", (dialog) => dialog.accept());
  await Promise.all([
    page.waitForNavigation(),
    page.click('form:has(input[name=username][value="crm@shop.test"]) button.danger'),
  ]);
  assert.doesNotMatch(await page.textContent("table.logins"), /crm@shop\.test/);
  log("SMTP login added with a generated password, used by swaks, removed");

  // --- Webhooks: an endpoint that gets the events from now on, a refused
  // target, and a dead one deleted.
  step = "webhooks";
  await page.goto(`${base}/ui/webhooks?account=${input.account}`);
  await page.fill("#add-webhook input[name=url]", "http://169.254.169.254/latest");
  [answer] = await Promise.all([page.waitForNavigation(), page.click("#add-webhook button[type=submit]")]);
  assert.equal(answer.status(), 400);
  assert.match(await page.textContent(".alert"), /URL: .*link-local/);
  for (const url of [input.webhook, "http://127.0.0.2:9/dead"]) {
    await page.fill("#add-webhook input[name=url]", url);
    [answer] = await Promise.all([page.waitForNavigation(), page.click("#add-webhook button[type=submit]")]);
    assert.equal(answer.status(), 201, `made ${url}`);
    assert.match((await page.textContent("#new-webhook-secret")).trim(), /^whsec_|^[A-Za-z0-9_-]{20,}$/);
  }
  assert.equal(await page.locator("table.webhooks tbody tr").count(), 2);
  // A test event to each: the live endpoint takes it, the dead one cannot.
  [answer] = await Promise.all([
    page.waitForNavigation(),
    page.click(`tr:has-text("${input.webhook}") button:has-text("Send a test event")`),
  ]);
  assert.match(await page.textContent("#test-outcome"), /took the test event/);
  await Promise.all([
    page.waitForNavigation(),
    page.click('tr:has-text("127.0.0.2") button:has-text("Send a test event")'),
  ]);
  assert.match(await page.textContent("#test-outcome"), /did not take the test event: .*connect/i);
  await shot(page, "12-webhooks");
  page.once("dialog", (dialog) => dialog.accept());
  await Promise.all([
    page.waitForNavigation(),
    page.click('tr:has-text("127.0.0.2") button.danger'),
  ]);
  assert.equal(await page.locator("table.webhooks tbody tr").count(), 1);
  assert.match(await page.textContent("table.webhooks"), new RegExp(input.webhook.replace(/[.]/g, "\\.")));
  log("webhook endpoints made (a link-local target refused), tested, and deleted");

  // --- Suppression list: add an address, a later send to it is suppressed,
  // the audit history shows who did what; a bad address is explained.
  step = "suppressions";
  await page.goto(`${base}/ui/suppressions?account=${input.account}`);
  assert.match(await page.textContent("main"), /The list is empty/);
  await page.fill("#add-suppression input[name=address]", "not an address");
  [answer] = await Promise.all([page.waitForNavigation(), page.click("#add-suppression button")]);
  assert.equal(answer.status(), 400);
  assert.match(await page.textContent(".alert"), /"not an address" is not an email address/);
  await page.fill("#add-suppression input[name=address]", input.suppress);
  await page.fill("#add-suppression input[name=note]", "asked by phone");
  await Promise.all([page.waitForNavigation(), page.click("#add-suppression button")]);
  let status = await page.textContent("#address-status");
  assert.match(status, /suppressed/);
  assert.match(status, /manual/);
  assert.match(status, /asked by phone/);
  assert.match(await page.textContent("table.history"), new RegExp(`added\\s*manual\\s*ui:${input.admin.email}`));
  await shot(page, "13-suppression-added");
  execFileSync("swaks", [
    "--server", input.submission, "--tls", "--auth", "PLAIN",
    "--auth-user", input.smtp.user, "--auth-password", input.smtp.password,
    "--from", input.from, "--to", input.suppress, "--header", "Subject: After the suppression",
  ], { stdio: "pipe" });
  let suppressedId = null;
  for (let i = 0; i < 200 && !suppressedId; i++) {
    const found = await (await fetch(`${base}/api/v1/messages?recipient=${encodeURIComponent(input.suppress)}`, {
      headers: { authorization: `Bearer ${input.api_key}` },
    })).json();
    const message = found.messages[0];
    if (message && message.recipients[0].state === "suppressed") suppressedId = message.id;
    else await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(suppressedId, "the send to a suppressed address was suppressed");
  await page.goto(`${base}/ui/messages/${suppressedId}?account=${input.account}`);
  assert.match(await page.textContent("ol.timeline"), /suppressed/);
  await page.goto(`${base}/ui/suppressions?account=${input.account}&address=${encodeURIComponent(input.suppress)}`);
  page.once("dialog", (dialog) => dialog.accept());
  await Promise.all([page.waitForNavigation(), page.click("#address-status button.danger")]);
  status = await page.textContent("#address-status");
  assert.match(status, /not suppressed/);
  assert.match(await page.textContent("table.history"), /removed/);
  await shot(page, "14-suppression-history");
  log("suppression added in the page stopped a later send; removed; history shown");

  // --- Users: an admin adds one (generated password), who signs in, and is
  // signed out at once when removed.
  step = "users";
  await page.goto(`${base}/ui/users`);
  assert.equal(await page.locator("table.users tbody tr").count(), 3);
  await page.fill("#add-user input[name=email]", "new@shop.test");
  await page.selectOption("#add-user select[name=role]", "member");
  [answer] = await Promise.all([page.waitForNavigation(), page.click("#add-user button[type=submit]")]);
  assert.equal(answer.status(), 400, "a member without an account is refused");
  assert.match(await page.textContent(".alert"), /A member needs an account/);
  await page.selectOption("#add-user select[name=role]", "viewer");
  await page.selectOption("#add-user select[name=account]", input.account);
  [answer] = await Promise.all([page.waitForNavigation(), page.click("#add-user button[type=submit]")]);
  assert.equal(answer.status(), 201);
  const generated = (await page.textContent("#new-password")).trim();
  assert.equal(generated.length, 24);
  await shot(page, "15-users");
  const newcomer = await browser.newContext();
  const newPage = await signIn(newcomer, "new@shop.test", generated);
  page.once("dialog", (dialog) => dialog.accept());
  await Promise.all([
    page.waitForNavigation(),
    page.click('form:has(input[name=email][value="new@shop.test"]) button.danger'),
  ]);
  assert.equal(await page.locator("table.users tbody tr").count(), 3);
  await newPage.reload();
  assert.match(newPage.url(), /\/ui\/login/, "a removed user's session ends at once");
  await newcomer.close();
  log("users page adds a user with a generated password and removes one, ending their session");

  // --- Logout ends the session, also for a copy of its cookie.
  step = "logout";
  await Promise.all([page.waitForNavigation(), page.click("text=Sign out")]);
  assert.equal(new URL(page.url()).pathname, "/ui/login");
  await page.goto(`${base}/ui/`);
  assert.match(page.url(), /\/ui\/login/, "signed out: back to the login page");
  const replay = await fetch(`${base}/ui/`, {
    headers: { cookie: `carteiro_session=${session.value}` },
    redirect: "manual",
  });
  assert.equal(replay.status, 303, "the old cookie no longer opens a page");
  assert.match(replay.headers.get("location"), /^\/ui\/login/);
  log("logout ends the session");
  await admin.close();

  // --- A viewer reads but cannot change anything.
  step = "viewer";
  const viewerContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await signIn(viewerContext, input.viewer.email, input.viewer.password);
  await page.goto(`${base}/ui/keys`);
  assert.equal(await page.locator("text=Create a key").count(), 0, "no create button for a viewer");
  assert.equal(await page.locator("button.danger").count(), 0, "no revoke buttons for a viewer");
  const csrf = await page.getAttribute("form.logout input[name=csrf]", "value");
  const viewerPost = await page.request.post(`${base}/ui/keys`, { form: { csrf }, maxRedirects: 0 });
  assert.equal(viewerPost.status(), 403, "a viewer's post is refused even with a good token");
  assert.match(await viewerPost.text(), /may not create API keys/);
  await page.goto(`${base}/ui/messages/${input.message_id}`);
  assert.match(await page.textContent("ol.timeline"), /delivered/, "a viewer reads their account's messages");
  answer = await page.goto(`${base}/ui/users`);
  assert.equal(answer.status(), 403, "only admins see the users page");
  await page.goto(`${base}/ui/keys`);
  await shot(page, "16-viewer-keys");
  log("viewer reads, and gets 403 for a form that changes anything");
  await viewerContext.close();

  // --- A member of another account: that account's message is 404.
  step = "member";
  const memberContext = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  page = await signIn(memberContext, input.member.email, input.member.password);
  await page.waitForSelector("body[data-charts=drawn]");
  await shot(page, "17-member-overview-phone");
  answer = await page.goto(`${base}/ui/messages/${input.message_id}`);
  assert.equal(answer.status(), 404, "another account's message is 404");
  answer = await page.goto(`${base}/ui/messages?account=${input.account}`);
  assert.equal(answer.status(), 404, "another account's search is 404");
  await shot(page, "18-member-not-found");
  await page.goto(`${base}/ui/messages`);
  assert.match(await page.textContent("main"), /No messages yet/);
  log("a member of another account gets 404 for this account's pages");
  await memberContext.close();

  // --- Wrong logins are throttled per IP and per user.
  step = "throttle";
  const attacker = await browser.newContext();
  page = await attacker.newPage();
  let statuses = [];
  for (let i = 0; i < input.max_failures + 1; i++) {
    await page.goto(`${base}/ui/login`);
    await page.fill("#email", input.member.email);
    await page.fill("#password", `guess ${i}`);
    [answer] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
    statuses.push(answer.status());
    if (answer.status() === 429) break;
  }
  assert.equal(statuses.at(-1), 429, `wrong logins end in 429: ${statuses}`);
  assert.ok(statuses.slice(0, -1).every((s) => s === 401), `401 before that: ${statuses}`);
  await shot(page, "19-login-throttled");
  log(`throttled after ${statuses.length - 1} more wrong logins: ${statuses}`);
  await attacker.close();
} catch (error) {
  console.error(`FAILED at step ${step}: ${error.stack || error}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log("all dashboard steps passed");
