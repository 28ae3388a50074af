// The SDK against real gateways on a private Redis: failover after kill -9,
// a command whose ack was lost applied once, Redis restarted empty, rate
// limits, the SSE + REST fallback when WebSocket upgrades are blocked, and
// the server API's disconnect.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { EaselClient, type ClientOptions } from "../src/index.js";
import type { DrawEvent, HistoryPage } from "../src/protocol.js";
import { Gateway, Redis, token, waitFor } from "./harness.js";
import { CuttingProxy, NoUpgradeProxy } from "./proxy.js";

const clients: EaselClient[] = [];
function client(user: string, url: string | string[], extra: Partial<ClientOptions> = {}): EaselClient {
  const c = new EaselClient({ url, getToken: () => token(user), backoff: { minMs: 50, maxMs: 1000 }, ...extra });
  c.connect();
  clients.push(c);
  return c;
}

/** Every durable draw on a canvas, from the server's own history. */
async function serverDraws(http: string, canvas: string): Promise<DrawEvent[]> {
  const resp = await fetch(`${http}/api/canvases/${canvas}/events?since=0&limit=1000`, {
    headers: { authorization: `Bearer ${token("auditor")}` },
  });
  const page = (await resp.json()) as HistoryPage;
  return page.events.filter((e): e is DrawEvent & { type: "draw" } => e.type === "draw");
}

let redis: Redis;
before(async () => {
  redis = await Redis.start();
});
after(async () => {
  for (const c of clients) c.disconnect();
  await redis.stop();
});

test("kill -9 of a gateway: the SDK resumes on the other with no lost or duplicated events", async () => {
  const g1 = await Gateway.start("k1", redis);
  const g2 = await Gateway.start("k2", redis);
  // The default backoff: the recovery time below is the SDK's as shipped.
  const reader = client("reader", [g1.ws, g2.ws], { backoff: {} });
  const seen: number[] = [];
  const board = reader.canvas("failover");
  let killedAt = 0;
  let lost = false;
  let recoveredAt = 0;
  reader.on("closed", () => (lost = true));
  board.on("draw", (d) => {
    seen.push(d.seq ?? -1);
    if (lost && recoveredAt === 0) recoveredAt = Date.now();
  });
  await board.ready;
  const writer = client("writer", g2.ws);
  const pen = writer.canvas("failover");
  await pen.ready;

  const total = 120;
  let acked = 0;
  let seqAtKill = 0;
  for (let i = 0; i < total; i++) {
    await pen.draw([{ x: i % 100, y: Math.floor(i / 100), color: (i % 30) + 1 }]);
    acked += 1;
    if (i === 40) {
      seqAtKill = board.seq;
      killedAt = Date.now();
      await g1.kill();
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await waitFor("the reader to catch up", () => board.seq === pen.seq);
  assert.equal(acked, total);
  const first = seen[0] ?? 0;
  assert.deepEqual(seen, Array.from({ length: total }, (_, i) => first + i), "every seq once, in order");
  assert.ok(seen.includes(seqAtKill + 1));
  assert.ok(recoveredAt > killedAt);
  console.log(`FIGURE failover: kill -9 of the reader's gateway to its next event (on the other gateway): ${recoveredAt - killedAt} ms`);
  const snapshot = await fetch(`${g2.http}/api/canvases/failover/snapshot?format=cells`, { headers: { authorization: `Bearer ${token("a")}` } });
  assert.deepEqual([...(board.pixels ?? [])], [...new Uint8Array(await snapshot.arrayBuffer())], "local pixels = the server's");
  await g2.stop();
});

test("a command whose ack is lost is resent after the reconnect and applied exactly once", async () => {
  const g = await Gateway.start("cut", redis);
  const proxy = await CuttingProxy.start(g.port);
  const c = client("cutter", proxy.ws, { pingIntervalMs: 600_000 });
  const board = c.canvas("exactly-once");
  await board.ready;
  proxy.cutOnNextReply = true;
  const published = await board.draw([{ x: 7, y: 7, color: 3 }]);
  assert.equal(proxy.cuts, 1, "the first ack never arrived");
  const draws = await serverDraws(g.http, "exactly-once");
  assert.equal(draws.length, 1, "applied once");
  assert.equal(published?.seq, draws[0]?.seq, "the resend got the first one's seq");
  await proxy.stop();
  await g.stop();
});

test("Redis restarted empty: the SDK resets to the server's state", async () => {
  const own = await Redis.start();
  const g = await Gateway.start("rr", own);
  const c = client("restarter", g.ws);
  const board = c.canvas("restart");
  const resets: string[] = [];
  board.on("reset", (r) => resets.push(r.reason));
  await board.ready;
  await board.draw([{ x: 1, y: 1, color: 9 }]);
  await waitFor("the pixel locally", () => board.pixels?.[board.width + 1] === 9);
  const epoch = board.epoch;
  await own.kill();
  await own.restart();
  await waitFor("a reset after the restart", () => resets.length >= 2);
  assert.notEqual(board.epoch, epoch);
  assert.notEqual(resets[1], "joined");
  assert.equal(board.pixels?.[board.width + 1], 0, "the lost pixel is gone locally too");
  await board.draw([{ x: 2, y: 2, color: 4 }]);
  await waitFor("the new pixel locally", () => board.pixels?.[2 * board.width + 2] === 4);
  const snapshot = await fetch(`${g.http}/api/canvases/restart/snapshot?format=cells`, { headers: { authorization: `Bearer ${token("a")}` } });
  const cells = new Uint8Array(await snapshot.arrayBuffer());
  const other = client("second", g.ws);
  const mirror = other.canvas("restart");
  await mirror.ready;
  assert.deepEqual([...(mirror.pixels ?? [])], [...cells]);
  await g.stop();
  await own.stop();
});

test("E004: rate-limited draws wait retry_after_ms, are resent and each applied once", async () => {
  const g = await Gateway.start("rl", redis, {
    EASEL_RATE_LIMITS: "pixels=600/s:256,chat=5/s:20,cursors=300/s:300,objects=30/s:60",
    EASEL_RATE_ABUSE_LIMIT: "1000",
  });
  const c = client("limited", g.ws);
  const limited: number[] = [];
  c.on("rate_limited", (r) => limited.push(r.retryAfterMs));
  const board = c.canvas("limits");
  await board.ready;
  // 20 draws of 100 pixels: 2,000 pixels against a burst of 256 and 600/s.
  const row = (y: number) => Array.from({ length: 100 }, (_, x) => ({ x, y, color: 1 }));
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => board.draw(row(i))));
  assert.ok(limited.length > 0, "some were refused first");
  assert.ok(limited.every((ms) => ms > 0));
  const seqs = new Set(results.map((r) => r?.seq));
  assert.equal(seqs.size, 20);
  assert.equal((await serverDraws(g.http, "limits")).length, 20);
  await g.stop();
});

test("WebSocket upgrades blocked: SSE + REST carry the same events, then back to WebSocket", async () => {
  const g = await Gateway.start("fb", redis);
  const proxy = await NoUpgradeProxy.start(g.port);
  const c = client("fallback", proxy.ws, { fallbackAfter: 2, wsRetryMs: 300 });
  const board = c.canvas("fallback");
  const got: number[] = [];
  board.on("draw", (d) => got.push(d.seq ?? -1));
  await board.ready;
  assert.equal(c.transport, "sse");
  const direct = client("direct", g.ws);
  const peer = direct.canvas("fallback");
  const peerGot: string[] = [];
  peer.on("draw", (d) => peerGot.push(d.author.id));
  await peer.ready;
  for (let i = 0; i < 5; i++) await peer.draw([{ x: i, y: 3, color: 2 }]);
  await waitFor("the draws over SSE", () => got.length === 5);
  const mine = await board.draw([{ x: 9, y: 9, color: 5 }]);
  assert.equal(typeof mine?.seq, "number");
  await waitFor("the REST draw at the peer", () => peerGot.includes("fallback"));
  const chat = await board.chat("over rest");
  assert.equal(chat?.seq, (mine?.seq ?? 0) + 1);

  proxy.allowUpgrades = true;
  await waitFor("the WebSocket again", () => c.transport === "websocket" && c.state === "connected");
  for (let i = 0; i < 3; i++) await peer.draw([{ x: i, y: 4, color: 3 }]);
  await waitFor("the draws over WebSocket", () => got.length === 9);
  assert.deepEqual(got, [...got].sort((a, b) => a - b));
  assert.equal(new Set(got).size, got.length, "no duplicates across the switch");
  await proxy.stop();
  await g.stop();
});

test("the server API's disconnect stops the SDK on WebSocket and on SSE; connect() brings it back", async () => {
  const key = "sdk-server-api-key-0123456789abcdef";
  const g = await Gateway.start("dc", redis, { EASEL_API_KEYS: key });
  const proxy = await NoUpgradeProxy.start(g.port);
  const ws = client("banned", g.ws);
  const sse = client("banned", proxy.ws, { fallbackAfter: 1, wsRetryMs: 60_000 });
  await Promise.all([ws.canvas("dc").ready, sse.canvas("dc").ready]);
  assert.equal(sse.transport, "sse");
  const errors: string[] = [];
  for (const c of [ws, sse]) c.on("error", (e) => errors.push(e.code));
  const resp = await fetch(`${g.http}/api/server/users/banned/disconnect`, {
    method: "POST",
    headers: { authorization: `ApiKey ${key}` },
  });
  assert.equal(resp.status, 202);
  await waitFor("both stopped", () => ws.state === "disconnected" && sse.state === "disconnected");
  assert.deepEqual(errors, ["disconnected", "disconnected"]);
  // The app decides to let the user back: the canvas is joined again.
  ws.connect();
  await waitFor("back", () => ws.state === "connected" && ws.canvas("dc").joined);
  await proxy.stop();
  await g.stop();
});
