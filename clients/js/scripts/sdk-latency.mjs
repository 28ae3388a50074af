// Delivery latency as the SDK sees it, beside a load test: N SDK clients
// join a canvas the load tester publishes on and record, per draw event,
// the time from the gateway's accept (`ts`) to the SDK's handler.
//
//   EASEL_JWT_SECRET=... node scripts/sdk-latency.mjs --url ws://...,ws://... \
//     --canvas load-0 --members 20 --secs 30
import { createHmac } from "node:crypto";
import { parseArgs } from "node:util";
import { EaselClient } from "../dist/index.js";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    canvas: { type: "string", default: "load-0" },
    members: { type: "string", default: "20" },
    secs: { type: "string", default: "30" },
  },
});
const secret = process.env.EASEL_JWT_SECRET;
if (!values.url || !secret) throw new Error("--url and EASEL_JWT_SECRET are required");
const urls = values.url.split(",");
const token = (sub) => {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
};
const samples = [];
const clients = [];
for (let i = 0; i < Number(values.members); i++) {
  const c = new EaselClient({ url: urls[i % urls.length], token: token(`sdk-${i}`) });
  c.connect();
  const canvas = c.canvas(values.canvas, { pixels: false, objects: false });
  canvas.on("draw", (d) => samples.push(Date.now() - d.ts));
  clients.push({ c, canvas });
}
await Promise.all(clients.map((x) => x.canvas.ready));
const started = Date.now();
samples.length = 0;
await new Promise((r) => setTimeout(r, Number(values.secs) * 1000));
for (const { c } of clients) c.disconnect();
samples.sort((a, b) => a - b);
const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? NaN;
console.log(
  `sdk: ${clients.length} members, ${samples.length} deliveries in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
    `gateway accept -> SDK handler p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${samples.at(-1)} ms`,
);
process.exit(0);
