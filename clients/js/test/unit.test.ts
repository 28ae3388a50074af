// Unit tests of the pieces that need no server: backoff and close codes,
// the snapshot decoder, the SSE parser, the request queue, local state.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff, closeAction } from "../src/backoff.js";
import { EaselError } from "../src/errors.js";
import { jwtExp } from "../src/client.js";
import { Requests, isDurable, keyMaker, type Pending } from "../src/requests.js";
import { unpackCells } from "../src/snapshot.js";
import { readSse, type SseMessage } from "../src/sse.js";
import { CanvasState } from "../src/state.js";
import type { AccessChanged, AckResult, ClientMessage, ServerMessage } from "../src/protocol.js";
import { Canvas, type CanvasHost } from "../src/canvas.js";
import { HttpApi } from "../src/http.js";

test("backoff grows to its cap with full jitter; drains reconnect at once; abuse waits the penalty", () => {
  const top = new Backoff({ minMs: 100, maxMs: 1000 }, () => 0.999999);
  const caps = Array.from({ length: 6 }, () => Math.round(top.next("backoff")));
  assert.deepEqual(caps, [100, 200, 400, 800, 1000, 1000]);
  const low = new Backoff({ minMs: 100 }, () => 0);
  assert.equal(low.next("backoff"), 0, "full jitter reaches zero");
  assert.ok(new Backoff({}, () => 0.5).next("now") <= 100);
  assert.ok(new Backoff({ penaltyMs: 5000 }, () => 0).next("penalty") >= 5000);
  top.reset();
  assert.equal(Math.round(top.next("backoff")), 100);
});

test("close codes map to what the protocol asks of the client", () => {
  assert.equal(closeAction(1000, true), "stop");
  assert.equal(closeAction(4004, false), "stop");
  assert.equal(closeAction(1012, false), "now");
  assert.equal(closeAction(4001, false), "token");
  assert.equal(closeAction(4003, false), "token");
  assert.equal(closeAction(4029, false), "penalty");
  assert.equal(closeAction(4011, false), "penalty");
  assert.equal(closeAction(1006, false), "backoff");
  assert.equal(closeAction(4008, false), "backoff");
});

test("packed 5-bit cells unpack most significant bit first", () => {
  const values = [0, 31, 5, 17, 1, 30, 2, 9, 12];
  // Pack as the gateway does (Redis BITFIELD u5 at offsets 0, 5, 10, ...).
  const packed = new Uint8Array(Math.ceil((values.length * 5) / 8));
  values.forEach((v, i) => {
    for (let b = 0; b < 5; b++) {
      const bit = i * 5 + b;
      if ((v >> (4 - b)) & 1) packed[bit >> 3] = (packed[bit >> 3] ?? 0) | (0x80 >> (bit & 7));
    }
  });
  assert.deepEqual([...unpackCells(packed, 5, values.length)], values);
  assert.deepEqual([...unpackCells(new Uint8Array([7, 8, 9]), 8, 3)], [7, 8, 9]);
});

test("the SSE parser splits events, names, ids and multi-line data across chunks", async () => {
  const text = 'event: joined\ndata: {"seq":1}\n\n: comment\nid: 2\ndata: a\ndata: b\n\nid: 3\r\ndata: c\r\n\r\n';
  const bytes = new TextEncoder().encode(text);
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < bytes.length; i += 7) c.enqueue(bytes.slice(i, i + 7));
      c.close();
    },
  });
  const got: SseMessage[] = [];
  await readSse(body, (m) => got.push(m));
  assert.deepEqual(got, [
    { event: "joined", data: '{"seq":1}', id: undefined },
    { event: "message", data: "a\nb", id: "2" },
    { event: "message", data: "c", id: "3" },
  ]);
});

function pending(id: number, durable: boolean, log: string[]): Pending {
  return {
    cmd: { type: durable ? "chat" : "presence", canvas: "c", text: "t", id },
    resolve: () => log.push(`ok ${id}`),
    reject: (e: EaselError) => log.push(`${e.code} ${id}`),
    durable,
    attempts: 0,
  };
}

test("a lost connection requeues unacked durable commands first, in send order, and fails the rest", () => {
  const log: string[] = [];
  const r = new Requests(10);
  r.sent(pending(2, true, log), 60_000, () => undefined);
  r.sent(pending(1, true, log), 60_000, () => undefined);
  r.sent(pending(3, false, log), 60_000, () => undefined);
  r.enqueue(pending(4, true, log));
  r.connectionLost();
  assert.deepEqual(log, ["closed 3"]);
  assert.deepEqual(r.drain().map((p) => p.cmd.id), [1, 2, 4]);
  const full = new Requests(1);
  assert.equal(full.enqueue(pending(5, true, log)), true);
  assert.equal(full.enqueue(pending(6, true, log)), false);
});

test("operation keys are unique and durable commands are recognised", () => {
  const key = keyMaker();
  const keys = new Set(Array.from({ length: 1000 }, key));
  assert.equal(keys.size, 1000);
  assert.ok([...keys].every((k) => k.length <= 64));
  assert.ok(isDurable({ type: "draw", canvas: "c", pixels: [] }));
  assert.ok(!isDurable({ type: "cursor", canvas: "c", x: 1, y: 1 }));
});

test("jwtExp reads exp without verifying", () => {
  const payload = Buffer.from(JSON.stringify({ sub: "a", exp: 1234567890 })).toString("base64url");
  assert.equal(jwtExp(`e30.${payload}.sig`), 1234567890);
  assert.equal(jwtExp("garbage"), undefined);
});

test("events that arrive while the snapshot loads apply after it only when newer", () => {
  const s = new CanvasState(true, true);
  s.beginLoad();
  const draw = (seq: number, x: number, color: number): ServerMessage => ({
    type: "draw", canvas: "c", seq, author: { id: "a" }, ts: 0, pixels: [{ x, y: 0, color }],
  });
  s.apply(draw(5, 0, 1)); // included in the snapshot below
  s.apply(draw(7, 1, 2)); // newer: applied after it
  s.finishLoad({ width: 2, height: 1, paletteSize: 4, seq: 6, epoch: "e", cells: new Uint8Array([3, 0]) }, { objects: [], pages: [{ upTo: undefined, seq: 6 }] });
  assert.deepEqual([...(s.pixels ?? [])], [3, 2]);
  s.apply({ type: "cleared", canvas: "c", seq: 8, author: { id: "a" }, ts: 0 });
  assert.deepEqual([...(s.pixels ?? [])], [0, 0]);
});

test("object events during a load apply on top of the page that holds their object when newer", () => {
  const s = new CanvasState(false, true);
  s.beginLoad();
  const obj = (id: string) => ({ id, kind: "token", x: 0, y: 0, w: 1, h: 1, props: {}, likes: 0, owner: "a" });
  const like = (seq: number, object: string): ServerMessage => ({ type: "object_liked", canvas: "c", seq, author: { id: "a" }, ts: 0, object });
  s.apply(like(6, "a")); // after page 1 (seq 5): applied
  s.apply(like(7, "c")); // page 2 (seq 8) includes it: not applied again
  s.apply(like(9, "c")); // after page 2: applied
  s.finishLoad(undefined, {
    objects: [obj("a"), obj("b"), obj("c")],
    pages: [{ upTo: "b", seq: 5 }, { upTo: undefined, seq: 8 }],
  });
  assert.equal(s.objects.get("a")?.likes, 1);
  assert.equal(s.objects.get("b")?.likes, 0);
  assert.equal(s.objects.get("c")?.likes, 1);
});

/** Yields to pending promise jobs until `cond` holds (at most 1,000 turns). */
async function waitUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(cond(), "condition never held");
}

test("access_changed: another role joins again with a resume; none leaves the canvas for good", async () => {
  const sent: ClientMessage[] = [];
  const joined = (seq: number): AckResult =>
    ({
      canvas: "c", width: 2, height: 2, palette_size: 4, echo: true, seq, epoch: "e1",
      resume: null, role: "gm", presence: [], presence_count: 0,
    }) as unknown as AckResult;
  const host: CanvasHost = {
    transport: "websocket",
    ready: true,
    cursorHz: 10,
    http: new HttpApi(
      () => "http://127.0.0.1:9",
      () => Promise.resolve("t"),
      () => Promise.reject(new Error("no HTTP in this test")),
    ),
    request: (cmd) => {
      sent.push(cmd);
      return Promise.resolve(joined(5));
    },
    send: () => undefined,
    streamDelay: () => 0,
  };
  const c = new Canvas("c", host, { pixels: false, objects: false });
  await c.join();
  const changes: AccessChanged[] = [];
  c.on("access_changed", (a) => changes.push(a));
  c.receive({ type: "access_changed", canvas: "c", role: "gm", ts: 1 });
  await waitUntil(() => sent.length === 2);
  assert.deepEqual(sent[1], { type: "join", canvas: "c", echo: true, since: 5, epoch: "e1" });
  c.receive({ type: "access_changed", canvas: "c", role: "none", ts: 2 });
  assert.equal(c.role, "none");
  assert.equal(c.joined, false);
  await c.rejoin();
  assert.equal(sent.length, 2, "a canvas it may not see is not joined again");
  assert.deepEqual(changes.map((a) => a.role), ["gm", "none"]);
});
