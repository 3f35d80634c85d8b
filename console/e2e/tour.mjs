// The console in Debian's Chromium against a real stack (started by tests/e2e/test_console_browser.py, which runs
// this script and answers its requests). It signs in, sees a mail sent over SMTP appear live, opens it and
// downloads its attachment, replies with a canned response and sees the delivery turn `sent`, misses a mail while
// offline and gets it on reconnect, adds a domain and sees its records, signs in with an agent key it made; it
// saves screenshots at 1280 and 360 px and runs axe-core on the main pages.
//
// Input: env CONSOLE_URL, CONSOLE_API_KEY, CONSOLE_ACCOUNT_NAME, CONSOLE_ATTACHMENT, SCREENSHOT_DIR, CHROMIUM
// (default /usr/bin/chromium). Requests to the test go out as `@@ {"request": ...}` lines on stdout; the answer is one JSON
// line on stdin. The last line is `@@ {"result": {...}}`; any failed check exits non-zero with the reason.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const CONSOLE_URL = env("CONSOLE_URL");
const API_KEY = env("CONSOLE_API_KEY");
const ACCOUNT_NAME = env("CONSOLE_ACCOUNT_NAME");
const SCREENSHOTS = env("SCREENSHOT_DIR");
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");
const TIMEOUT = Number(env("CONSOLE_STEP_TIMEOUT_MS", "60000"));
const ATTACHMENT = JSON.parse(env("CONSOLE_ATTACHMENT")); // {filename, text} of the file attached to each mail
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 360, height: 780 };

// --- talking to the test ------------------------------------------------------------------------------------------
const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ask(request) {
  process.stdout.write(`@@ ${JSON.stringify({ request })}\n`);
  const { value, done } = await answers.next();
  if (done) throw new Error(`no answer to ${request.type}`);
  const answer = JSON.parse(value);
  if (answer.error) throw new Error(`${request.type}: ${answer.error}`);
  return answer;
}
const step = (text) => process.stderr.write(`tour: ${text}\n`);

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

// --- axe-core -------------------------------------------------------------------------------------------------
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

async function axeScan(page, name) {
  // Evaluated over the DevTools protocol, not as an inline <script>: the console's CSP forbids inline script.
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const run = await window.axe.run(document, { resultTypes: ["violations"] });
    return run.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
    }));
  });
  step(`axe ${name}: ${result.length} violations ${JSON.stringify(result.map((v) => [v.id, v.impact, v.nodes]))}`);
  return { page: name, violations: result };
}

// --- the tour ---------------------------------------------------------------------------------------------------
const profile = mkdtempSync(join(tmpdir(), "mailstream-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: DESKTOP,
  locale: "en-GB",
  timezoneId: "Asia/Tokyo",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
context.setDefaultTimeout(TIMEOUT);
const problems = []; // CSP refusals, script errors: the console must run clean
const result = { screenshots: [], axe: [] };

try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (msg) => {
    if (msg.type() === "error" && !/Failed to load resource/.test(msg.text())) problems.push(msg.text());
  });
  page.on("pageerror", (error) => problems.push(String(error)));
  const shoot = async (name, viewport) => {
    await page.setViewportSize(viewport);
    await page.evaluate(() => {
      window.scrollTo(0, 0);
      for (const pane of document.querySelectorAll(".list-pane, .detail-pane")) pane.scrollTop = 0;
    });
    await page.evaluate(() => document.fonts.ready);
    const path = join(SCREENSHOTS, `${name}-${viewport.width}.png`);
    await page.screenshot({ path, fullPage: false });
    result.screenshots.push(path);
  };

  step("sign in");
  const response = await page.goto(CONSOLE_URL);
  check(response.ok(), `GET ${CONSOLE_URL} answered ${response.status()}`);
  check(/script-src 'self'/.test(response.headers()["content-security-policy"] ?? ""), "the page has a CSP");
  await page.getByLabel("API key", { exact: true }).fill(API_KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Main" }).waitFor();
  await page.locator(".account .who", { hasText: ACCOUNT_NAME }).waitFor();
  check((await page.locator(".account .who").getAttribute("data-role")) === "admin", "the key's role is shown");
  check(
    (await page.evaluate(() => JSON.stringify(sessionStorage))).includes(API_KEY),
    "the key is kept in sessionStorage",
  );
  check(!page.url().includes(API_KEY), "the key is never in the URL");
  await page.getByRole("button", { name: /Live updates: Live/ }).waitFor();
  result.axe.push(await axeScan(page, "inbox (empty)"));

  step("a mail sent over SMTP appears live");
  await page.evaluate(() => {
    window.__noReload = true; // gone if the page reloads
  });
  const first = await ask({ type: "send_mail", subject: "注文が届きません — order 1234", from_name: "山田 花子" });
  const row = page.locator(`a[data-conversation-id="${first.conversation_id}"]`);
  await row.waitFor();
  check(await page.evaluate(() => window.__noReload === true), "the mail appeared without a reload");
  check((await row.textContent()).includes("注文が届きません"), "the Japanese subject is shown");
  check((await page.locator("#list-title .count").textContent()).includes("1 new"), "the new count is shown");

  step("open it");
  await row.click();
  const title = page.locator("#conversation-title");
  await title.waitFor();
  check((await title.textContent()).includes("注文が届きません"), "the conversation opened");
  const mailFrame = page.locator(".message.inbound iframe.mail-frame");
  await mailFrame.waitFor();
  check((await mailFrame.getAttribute("sandbox")) === "", "mail HTML is in a frame sandboxed without scripts");
  const body = await mailFrame.contentFrame().locator("body").textContent();
  check(body.includes("Order 1234") && body.includes("注文番号"), "the mail's HTML body is rendered");
  const logo = mailFrame.contentFrame().locator("img");
  await logo.waitFor();
  check((await logo.getAttribute("src")).startsWith("data:image/png"), "the inline image is embedded");
  check(await logo.evaluate((img) => img.complete && img.naturalWidth === 4), "the inline image is shown");
  check((await mailFrame.contentFrame().locator("script").count()) === 0, "the mail's script was removed");
  await page.locator(".message.inbound .auth").waitFor();
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: `Download ${ATTACHMENT.filename}` }).first().click(),
  ]);
  check(download.suggestedFilename() === ATTACHMENT.filename, "the attachment downloads under its name");
  check(readFileSync(await download.path(), "utf8") === ATTACHMENT.text, "the attachment's bytes arrive intact");
  result.axe.push(await axeScan(page, "conversation"));

  step("reply with a canned response");
  await page.getByLabel("Canned response").selectOption({ label: first.canned_title });
  await page.getByRole("button", { name: "Preview" }).click();
  await page.locator(".reply .preview iframe").waitFor();
  await page.getByRole("button", { name: "Send reply" }).click();
  const outbound = page.locator(".message.outbound");
  await outbound.waitFor();
  step("the delivery turns sent");
  await page.locator('.message.outbound [data-delivery="sent"]').waitFor();
  check((await outbound.locator("pre.text, iframe").count()) > 0, "the reply's body is shown");
  await shoot("inbox", DESKTOP);
  await shoot("conversation", PHONE);
  await page.goto(`${CONSOLE_URL}#/inbox`);
  await page.locator(`a[data-conversation-id="${first.conversation_id}"]`).waitFor();
  await shoot("inbox", PHONE);
  result.axe.push(await axeScan(page, "inbox (phone)"));
  await page.setViewportSize(DESKTOP);

  step("a mail that arrives while offline is replayed on reconnect");
  await page.evaluate(() => {
    window.__noReload = true;
  });
  await context.setOffline(true);
  await page.getByRole("button", { name: /Live updates: Live/ }).click(); // drop the stream: it cannot come back yet
  await page.getByRole("button", { name: /Live updates: Reconnecting/ }).waitFor();
  const missed = await ask({ type: "send_mail", subject: "Missed while offline", from_name: "Offline Customer" });
  await context.setOffline(false);
  await page.getByRole("button", { name: /Live updates: Live/ }).waitFor();
  await page.locator(`a[data-conversation-id="${missed.conversation_id}"]`).waitFor();
  check(await page.evaluate(() => window.__noReload === true), "the missed mail arrived without a reload");

  step("setup pages");
  await page.getByRole("link", { name: "Streams" }).click();
  await page.getByRole("heading", { name: "Topics and streams" }).waitFor();
  await page.getByRole("button", { name: /^Copy the forwarding address of/ }).first().waitFor();
  await page.locator("details summary", { hasText: "Outlook" }).first().click(); // the provider steps, opened
  result.axe.push(await axeScan(page, "streams"));
  await shoot("streams", DESKTOP);

  step("add a domain and see its records");
  await page.getByRole("link", { name: "Domains" }).click();
  await page.getByLabel("Domain", { exact: true }).fill("acme-console.test");
  await page.getByRole("button", { name: "Add domain" }).click();
  await page.getByRole("heading", { name: "acme-console.test" }).waitFor();
  const records = page.locator("ul.records li.record");
  await records.first().waitFor();
  const purposes = await records.locator("h3").allTextContents();
  for (const purpose of ["DKIM", "SPF", "DMARC"]) {
    check(purposes.some((p) => p.includes(purpose)), `the ${purpose} record is listed`);
  }
  await page.getByRole("button", { name: "Verify now" }).click();
  await page.locator(".status", { hasText: "acme-console.test is" }).waitFor();
  result.axe.push(await axeScan(page, "domain"));
  await shoot("domain", DESKTOP);
  await shoot("domain", PHONE);
  result.axe.push(await axeScan(page, "domain (phone)"));
  await page.setViewportSize(DESKTOP);

  step("an automation rule, and its dry run");
  await page.getByRole("link", { name: "Rules", exact: true }).click();
  await page.getByRole("heading", { name: "Automation rules", exact: true }).waitFor();
  const newRule = page.getByRole("form", { name: "New rule" });
  await newRule.getByLabel("Name").fill("Tag refunds");
  await newRule.getByLabel("contains").fill("refund");
  await newRule.getByLabel("add tags").fill("refund");
  await newRule.getByRole("button", { name: "Add rule" }).click();
  const rule = page.locator("article", { has: page.getByRole("heading", { name: "Tag refunds" }) });
  await rule.locator("summary", { hasText: "Dry run" }).click();
  await rule.getByLabel("Subject").fill("I would like a refund");
  await rule.getByRole("button", { name: "Test" }).click();
  await rule.locator(".note", { hasText: "Would fire" }).waitFor();
  await rule.getByLabel("Subject").fill("Just saying thanks");
  await rule.getByRole("button", { name: "Test" }).click();
  await rule.locator(".note", { hasText: "Would not fire" }).waitFor();

  for (const [link, heading] of [
    ["Rules", "Automation rules"],
    ["Template & replies", "Email template"],
    ["API keys", "API keys"],
  ]) {
    await page.getByRole("link", { name: link, exact: true }).click();
    await page.getByRole("heading", { name: heading, exact: true }).waitFor();
    result.axe.push(await axeScan(page, link.toLowerCase()));
  }

  step("an agent key made on the keys page sees the inbox but not the admin pages");
  await page.getByRole("link", { name: "API keys", exact: true }).click();
  await page.getByLabel("Name", { exact: true }).fill("Agent Aiko");
  await page.getByLabel("Role").selectOption("agent");
  await page.getByRole("button", { name: "Create key" }).click();
  const agentKey = (await page.locator(".note code").textContent()).trim();
  check(agentKey.length > 20 && agentKey !== API_KEY, "the new key is shown once");
  await page.locator("tr", { hasText: "Agent Aiko" }).waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Mailstream" }).waitFor();
  check((await page.evaluate(() => sessionStorage.length)) === 0, "signing out forgets the key");
  await page.getByLabel("API key", { exact: true }).fill(agentKey);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator('.account .who[data-role="agent"]').waitFor();
  check((await page.getByRole("link", { name: "API keys", exact: true }).count()) === 0, "agents have no keys page");
  await page.getByRole("link", { name: "Domains" }).click();
  await page.getByRole("heading", { name: "Sending domains" }).waitFor();
  check((await page.getByRole("button", { name: "Add domain" }).count()) === 0, "agents cannot add domains");
  await page.getByRole("link", { name: /^Inbox/ }).click();
  await page.locator(`a[data-conversation-id="${first.conversation_id}"]`).waitFor();

  step("a reload keeps the session (sessionStorage); the skip link is the first Tab stop");
  await page.reload();
  await page.getByRole("navigation", { name: "Main" }).waitFor();
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement?.classList.contains("skip")), "Tab reaches the skip link");

  check(problems.length === 0, `no script errors or CSP refusals: ${problems.join(" | ")}`);
  result.problems = problems;
  process.stdout.write(`@@ ${JSON.stringify({ result })}\n`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(0);
