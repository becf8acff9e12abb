// browser.mjs lets the Go browser tests drive a running Chromium through
// playwright-core. The Go side starts Chromium itself (Debian's
// /usr/bin/chromium; no browser is ever downloaded) and passes its DevTools
// WebSocket address as the only argument.
//
// Protocol: one JSON request per line on stdin, one JSON reply per line on
// stdout. Requests run concurrently; replies carry the request's id:
//   request  {"id": 1, "op": "...", ...params}
//   reply    {"id": 1, "value": ...} or {"id": 1, "error": "..."}
// When stdin ends, the script disconnects and exits 0.
//
// Operations (ctx and page are handles returned earlier):
//   newContext  {viewport?, permissions?, ignoreHTTPSErrors?}     -> {ctx}
//   closeContext {ctx}
//   newPage     {ctx}                                             -> {page}
//   goto        {page, url}                      -> {status} of the main document
//   eval        {page, frame?, fn, arg?}         -> what fn(arg) returns
//   waitFor     {page, frame?, fn, arg?, timeoutMs}
//                 calls fn(arg) every 25 ms until it returns a truthy value,
//                 then replies with that value; an error once timeoutMs has
//                 passed, with the last value or exception
//   click       {page, frame?, selector}          a mouse click on the element
//   type        {page, text}                      keyboard.type
//   press       {page, key}                       keyboard.press, e.g. "Control+Shift+V"
//   viewport    {page, width, height}
//   frames      {page}                           -> [{url, name}] of every frame
//   console     {page}                           -> console messages and page errors so far
//   waitConsole {page, includes, timeoutMs}       waits for a console message holding
//                                                 every string of includes
//   screenshot  {page, path}
//   setInputFiles {page, selector, files}        sets the files of a file input of the
//                                                 main frame to local paths, as the file
//                                                 chooser does (DOM.setFileInputFiles: no
//                                                 size limit, the browser reads the files)
//   download    {page, frame?, selector, path, timeoutMs?}
//                 clicks the element and saves the download that follows at
//                 path -> {suggestedFilename}
//   closeBrowser                                   ends Chromium (CDP Browser.close)
//
// fn is JavaScript source of a function of one argument, run in the page
// (or in the first frame whose URL starts with "frame"); it may be async.

import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const browser = await chromium.connectOverCDP(process.argv[2]);
const handles = new Map();
let nextHandle = 1;

function keep(obj) {
  const h = nextHandle++;
  handles.set(h, obj);
  return h;
}

function get(h, what) {
  const obj = handles.get(h);
  if (!obj) throw new Error(`no ${what} ${h}`);
  return obj;
}

function target(req) {
  const page = get(req.page, "page").page;
  if (req.frame == null) return page;
  const frame = page.frames().find((f) => f.url().startsWith(req.frame));
  if (!frame) {
    throw new Error(`no frame at ${req.frame}; frames: ${page.frames().map((f) => f.url()).join(", ")}`);
  }
  return frame;
}

function compile(src) {
  // Playwright serialises a function by its source; wrap the caller's.
  return new Function("arg", `return (${src})(arg);`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const ops = {
  async newContext(req) {
    const ctx = await browser.newContext({
      viewport: req.viewport ?? { width: 1000, height: 600 },
      ignoreHTTPSErrors: Boolean(req.ignoreHTTPSErrors),
    });
    if (req.permissions?.length) await ctx.grantPermissions(req.permissions);
    return { ctx: keep(ctx) };
  },
  async closeContext(req) {
    const ctx = get(req.ctx, "context");
    handles.delete(req.ctx);
    await ctx.close();
    return null;
  },
  async newPage(req) {
    const page = await get(req.ctx, "context").newPage();
    const entry = { page, logs: [], watchers: new Set() };
    const log = (line) => {
      entry.logs.push(line);
      for (const w of entry.watchers) w(line);
    };
    page.on("console", (m) => log(`console.${m.type()}: ${m.text()} (${m.location()?.url ?? ""})`));
    page.on("pageerror", (e) => log(`pageerror: ${e.message}`));
    page.on("requestfailed", (r) => log(`requestfailed: ${r.url()} ${r.failure()?.errorText ?? ""}`));
    return { page: keep(entry) };
  },
  async goto(req) {
    const res = await get(req.page, "page").page.goto(req.url);
    return { status: res ? res.status() : 0 };
  },
  async eval(req) {
    return target(req).evaluate(compile(req.fn), req.arg);
  },
  async waitFor(req) {
    const deadline = Date.now() + (req.timeoutMs ?? 15000);
    const fn = compile(req.fn);
    let last;
    for (;;) {
      try {
        const v = await target(req).evaluate(fn, req.arg);
        if (v) return v;
        last = `last value ${JSON.stringify(v)}`;
      } catch (e) {
        last = `last error ${e.message}`;
      }
      if (Date.now() >= deadline) {
        throw new Error(`timed out after ${req.timeoutMs ?? 15000} ms; ${last}`);
      }
      await sleep(25);
    }
  },
  async click(req) {
    await target(req).click(req.selector);
    return null;
  },
  async type(req) {
    await get(req.page, "page").page.keyboard.type(req.text);
    return null;
  },
  async press(req) {
    await get(req.page, "page").page.keyboard.press(req.key);
    return null;
  },
  async viewport(req) {
    await get(req.page, "page").page.setViewportSize({ width: req.width, height: req.height });
    return null;
  },
  async frames(req) {
    return get(req.page, "page").page.frames().map((f) => ({ url: f.url(), name: f.name() }));
  },
  async console(req) {
    return get(req.page, "page").logs;
  },
  async waitConsole(req) {
    const entry = get(req.page, "page");
    const ms = req.timeoutMs ?? 15000;
    const matches = (line) => req.includes.every((s) => line.includes(s));
    const found = entry.logs.find(matches);
    if (found) return found;
    return new Promise((resolve, reject) => {
      const watcher = (line) => {
        if (!matches(line)) return;
        clearTimeout(timer);
        entry.watchers.delete(watcher);
        resolve(line);
      };
      const timer = setTimeout(() => {
        entry.watchers.delete(watcher);
        reject(new Error(`no console message with ${JSON.stringify(req.includes)} within ${ms} ms; got:\n${entry.logs.join("\n")}`));
      }, ms);
      entry.watchers.add(watcher);
    });
  },
  async screenshot(req) {
    await get(req.page, "page").page.screenshot({ path: req.path, fullPage: true });
    return null;
  },
  async setInputFiles(req) {
    // Playwright's own setInputFiles sends the content over the protocol
    // (at most 50 MB) to a browser it did not launch.
    const page = get(req.page, "page").page;
    const cdp = await page.context().newCDPSession(page);
    try {
      const { root } = await cdp.send("DOM.getDocument", { depth: 0 });
      const { nodeId } = await cdp.send("DOM.querySelector", { nodeId: root.nodeId, selector: req.selector });
      if (!nodeId) throw new Error(`no element ${req.selector}`);
      await cdp.send("DOM.setFileInputFiles", { nodeId, files: req.files });
    } finally {
      await cdp.detach().catch(() => {});
    }
    return null;
  },
  async download(req) {
    const page = get(req.page, "page").page;
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: req.timeoutMs ?? 60000 }),
      target(req).click(req.selector),
    ]);
    await download.saveAs(req.path);
    return { suggestedFilename: download.suggestedFilename() };
  },
  async closeBrowser() {
    const cdp = await browser.newBrowserCDPSession();
    await cdp.send("Browser.close").catch(() => {}); // the connection drops as it closes
    return null;
  },
};

function reply(msg) {
  process.stdout.write(JSON.stringify(msg) + "\n");
}

async function handle(line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    reply({ id: null, error: `bad request: ${e.message}` });
    return;
  }
  const op = ops[req.op];
  if (!op) {
    reply({ id: req.id, error: `unknown op ${JSON.stringify(req.op)}` });
    return;
  }
  try {
    const value = await op(req);
    reply({ id: req.id, value: value ?? null });
  } catch (e) {
    reply({ id: req.id, error: String(e?.message ?? e) });
  }
}

const pending = new Set();
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const p = handle(line).finally(() => pending.delete(p));
  pending.add(p);
});
lines.on("close", async () => {
  await Promise.allSettled([...pending]);
  await browser.close().catch(() => {});
  process.stdout.write("", () => process.exit(0));
});
