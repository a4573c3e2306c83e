// A small browser driver for capstan's web view tests (tests/it/browser.rs): a headless
// Chromium (Debian's, at $CHROMIUM) driven through playwright-core, one JSON command per
// stdin line, one JSON answer per stdout line. The tests decide; this only does.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
let page = await context.newPage();
const problems = [];
const watch = (p) => {
  p.on("console", (m) => {
    if (m.type() === "error") problems.push(m.text());
  });
  p.on("pageerror", (e) => problems.push(String(e)));
};
watch(page);

const commands = {
  async scripts({ enabled }) {
    await context.close();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, javaScriptEnabled: enabled });
    page = await context.newPage();
    watch(page);
    return { ok: true };
  },
  async goto({ url }) {
    const response = await page.goto(url, { waitUntil: "load" });
    return { status: response ? response.status() : 0, title: await page.title(), url: page.url() };
  },
  async text({ selector }) {
    const el = await page.$(selector);
    return { text: el ? await el.innerText() : null };
  },
  async all({ selector, attr }) {
    const values = await page.$$eval(
      selector,
      (els, attr) => els.map((e) => (attr ? e.getAttribute(attr) : e.textContent.trim())),
      attr || null,
    );
    return { values };
  },
  async click({ selector }) {
    await Promise.all([page.waitForLoadState("load"), page.click(selector)]);
    return { url: page.url(), title: await page.title() };
  },
  async press({ key }) {
    await page.keyboard.press(key);
    const focused = await page.evaluate(() => {
      const e = document.activeElement;
      if (!e || e === document.body) return null;
      return { tag: e.tagName.toLowerCase(), href: e.getAttribute("href"), name: e.getAttribute("name") };
    });
    return { focused };
  },
  async focusables() {
    // What a keyboard user should reach: links and form controls, in document order.
    const values = await page.$$eval("a[href], select, button, input, [tabindex='0']", (els) =>
      els.map((e) => ({ tag: e.tagName.toLowerCase(), href: e.getAttribute("href"), name: e.getAttribute("name") })),
    );
    return { values };
  },
  async wait({ selector, contains, timeout }) {
    await page.waitForFunction(
      ([selector, contains]) => {
        const el = document.querySelector(selector);
        return el && el.textContent.includes(contains);
      },
      [selector, contains],
      { timeout: timeout || 30000 },
    );
    return { ok: true };
  },
  async screenshot({ path }) {
    await page.screenshot({ path, fullPage: true });
    return { ok: true };
  },
  async problems() {
    return { values: problems.splice(0) };
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    const command = JSON.parse(line);
    const run = commands[command.cmd];
    answer = run ? await run(command) : { error: `no command ${command.cmd}` };
  } catch (e) {
    answer = { error: String(e && e.message ? e.message : e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
await browser.close();
