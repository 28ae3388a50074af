// The demo in a real browser (Debian's Chromium through playwright-core):
// two pages on two gateways share pixels, chat, presence and cursors; a
// page on another origin uses REST and SSE (CORS).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import http from "node:http";
import type net from "node:net";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { Gateway, Redis, token } from "./harness.js";

const DEMO = fileURLToPath(new URL("../../../demo/dist", import.meta.url));
const SHOTS = process.env.EASEL_SCREENSHOTS ?? fileURLToPath(new URL("../screenshots", import.meta.url));
const CHROMIUM = process.env.EASEL_CHROMIUM ?? "/usr/bin/chromium";

let redis: Redis;
let g1: Gateway;
let g2: Gateway;
let browser: Browser;

before(async () => {
  execFileSync(process.execPath, [fileURLToPath(new URL("../../scripts/build-demo.mjs", import.meta.url))]);
  mkdirSync(SHOTS, { recursive: true });
  redis = await Redis.start();
  const env = { EASEL_STATIC_DIR: DEMO, EASEL_CANVAS_WIDTH: "64", EASEL_CANVAS_HEIGHT: "64" };
  g1 = await Gateway.start("b1", redis, env);
  g2 = await Gateway.start("b2", redis, env);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser.close();
  await g1.stop();
  await g2.stop();
  await redis.stop();
});

async function open(gateway: Gateway, user: string, canvas: string, role = "player"): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  page.on("pageerror", (e) => console.error(`[${user}] ${e.message}`));
  const t = token(user, 600, { role, name: `${user[0]?.toUpperCase() ?? ""}${user.slice(1)}` });
  await page.goto(`${gateway.http}/?canvas=${canvas}&user=${user}&token=${t}`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 15_000 });
  return page;
}

/** The colour index of a cell in a page's local state. */
function cell(page: Page, x: number, y: number): Promise<number | undefined> {
  return page.evaluate(
    ([x, y]) => {
      const c = (window as unknown as { easel: { canvas: { pixels?: Uint8Array; width: number } } }).easel.canvas;
      return c.pixels?.[y * c.width + x];
    },
    [x, y] as const,
  );
}

test("two pages on two gateways: pixels, chat, presence and cursors cross", async () => {
  const ada = await open(g1, "ada", "shared", "gm");
  const bob = await open(g2, "bob", "shared");
  // Presence: each lists the other.
  await bob.waitForSelector('#people li[data-user="ada"]', { timeout: 5_000 });
  await ada.waitForSelector('#people li[data-user="bob"]', { timeout: 5_000 });

  // A pixel drawn on one page appears on the other within a second.
  await ada.click('#palette button[data-color="5"]');
  const box = await ada.locator("#board").boundingBox();
  assert.ok(box);
  const at = (x: number, y: number) => ({ x: box.x + ((x + 0.5) / 64) * box.width, y: box.y + ((y + 0.5) / 64) * box.height });
  const p = at(10, 12);
  const clicked = Date.now();
  await ada.mouse.click(p.x, p.y);
  await bob.waitForFunction(
    () => {
      const c = (window as unknown as { easel: { canvas: { pixels?: Uint8Array; width: number } } }).easel.canvas;
      return c.pixels?.[12 * c.width + 10] === 5;
    },
    undefined,
    { timeout: 1_000 },
  );
  console.log(`FIGURE browser pixel: click on gateway 1 to the other page's state on gateway 2 in ${Date.now() - clicked} ms`);
  assert.equal(await cell(ada, 10, 12), 5);

  // Chat.
  await bob.fill("#chat-input", "hello from bob");
  await bob.press("#chat-input", "Enter");
  await ada.waitForSelector('#chat li:has-text("hello from bob")', { timeout: 5_000 });

  // Cursors: ada's pointer over the board shows on bob's page with her name.
  const q = at(30, 30);
  await ada.mouse.move(q.x, q.y);
  await ada.mouse.move(q.x + 5, q.y + 5);
  await bob.waitForSelector('#cursors .cursor[data-user="ada"]:has-text("Ada")', { timeout: 5_000 });

  // Tabletop: a token anyone sees; fog only the gm sees.
  await bob.click("#add-token");
  await ada.waitForSelector("#objects .token", { timeout: 5_000 });
  await ada.click("#add-fog");
  await ada.waitForSelector("#objects .fog", { timeout: 5_000 });
  await bob.waitForFunction(() => document.querySelectorAll("#objects .token").length === 1);
  assert.equal(await bob.locator("#objects .fog").count(), 0, "players never learn where fog is");
  for (let i = 0; i < 40; i++) {
    const r = at(8 + (i % 20), 30 + Math.floor(i / 20));
    await ada.mouse.click(r.x, r.y);
  }
  await bob.waitForFunction(() => {
    const c = (window as unknown as { easel: { canvas: { pixels?: Uint8Array; width: number } } }).easel.canvas;
    return c.pixels?.[31 * c.width + 27] === 5;
  });
  await ada.screenshot({ path: `${SHOTS}/demo-gm.png` });
  await bob.screenshot({ path: `${SHOTS}/demo-player.png` });
  await ada.close();
  await bob.close();
});

test("a page on another origin uses REST and SSE (CORS)", async () => {
  const other = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>elsewhere</title>");
  });
  await new Promise<void>((r) => other.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${(other.address() as net.AddressInfo).port}`;
  const page = await browser.newPage();
  await page.goto(origin);
  const result = await page.evaluate(
    async ([api, t]) => {
      const headers = { authorization: `Bearer ${t}` };
      const snap = await fetch(`${api}/api/canvases/cors/snapshot`, { headers });
      const post = await fetch(`${api}/api/canvases/cors/commands`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify({ type: "chat", canvas: "cors", text: "from elsewhere" }),
      });
      const sse = await fetch(`${api}/sse/canvases/cors?last_event_id=0`, { headers });
      const reader = sse.body?.getReader();
      let text = "";
      while (reader && !text.includes("from elsewhere")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      await reader?.cancel();
      return { snap: snap.status, seq: snap.headers.get("x-easel-seq"), post: post.status, sse: sse.status, text };
    },
    [g1.http, token("far")] as const,
  );
  assert.equal(result.snap, 200);
  assert.notEqual(result.seq, null, "X-Easel-Seq is exposed to the page");
  assert.equal(result.post, 200);
  assert.equal(result.sse, 200);
  assert.match(result.text, /event: joined/);
  assert.match(result.text, /from elsewhere/);
  await page.close();
  await new Promise((r) => other.close(r));
});
