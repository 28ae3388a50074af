// The Easel demo: a pixel board with a palette, live cursors with names,
// who is here, chat, and a tabletop layer, all on @easel/client.
//
// URL parameters: canvas (default "demo"), user, name, role (gm to place
// fog), token (else one from the development gateway's /dev/token),
// gateway (a WebSocket URL; default this page's host).

import { EaselClient, type Canvas, type ChatEvent } from "../../js/src/index.js";
import { Board } from "./board.js";

/** The page's element `#id`, of the class `kind`. */
function $<T extends HTMLElement>(id: string, kind: new () => T): T {
  const el = document.getElementById(id);
  if (!(el instanceof kind)) throw new Error(`#${id} missing from the page`);
  return el;
}
const params = new URLSearchParams(location.search);
const canvasId = params.get("canvas") ?? "demo";
const user = params.get("user") ?? sessionStorage.getItem("easel-user") ?? `guest-${Math.random().toString(36).slice(2, 7)}`;
sessionStorage.setItem("easel-user", user);
const name = params.get("name") ?? user;
const role = params.get("role");

async function getToken(): Promise<string> {
  const given = params.get("token");
  if (given) return given;
  const q = new URLSearchParams({ user, name, ...(role ? { role } : {}) });
  const resp = await fetch(`/dev/token?${q.toString()}`);
  if (!resp.ok) throw new Error("no token: open this page with ?token=<jwt> (or run the gateway with --dev)");
  return ((await resp.json()) as { token: string }).token;
}

async function paletteOf(canvas: Canvas, size: number): Promise<string[]> {
  try {
    const palette = await canvas.palette();
    if (palette.length > 0) return palette;
  } catch {
    // No catalogue: a generated palette below.
  }
  return Array.from({ length: size }, (_, i) => `hsl(${(i * 360) / size} 70% ${i === 0 ? 100 : 50}%)`);
}

function people(canvas: Canvas): void {
  const list = $("people", HTMLElement);
  list.replaceChildren();
  for (const u of canvas.presence.values()) {
    const li = document.createElement("li");
    li.dataset.user = u.id;
    li.textContent = u.name ?? u.id;
    const small = document.createElement("small");
    small.textContent = ` ${u.role}${u.activity ? `, ${u.activity.state}` : ""}`;
    li.append(small);
    list.append(li);
  }
}

const shown = new Set<number>();
function showChat(m: ChatEvent): void {
  if (m.seq != null) {
    if (shown.has(m.seq)) return;
    shown.add(m.seq);
  }
  const li = document.createElement("li");
  const who = document.createElement("b");
  who.textContent = `${m.author.name ?? m.author.id}: `;
  li.append(who, document.createTextNode(m.text));
  const list = $("chat", HTMLElement);
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

async function main(): Promise<void> {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const client = new EaselClient({ url: params.get("gateway") ?? `${scheme}://${location.host}/ws`, getToken });
  const status = $("status", HTMLElement);
  client.on("state", (s) => {
    status.textContent = `${s} (${client.transport})`;
    status.dataset.state = s;
  });
  client.on("latency", (ms) => ($("latency", HTMLElement).textContent = `${ms} ms`));
  client.connect();
  $("canvas-name", HTMLElement).textContent = canvasId;
  const canvas = client.canvas(canvasId);
  (window as unknown as { easel: unknown }).easel = { client, canvas };
  await canvas.ready;
  const board = new Board(canvas, await paletteOf(canvas, canvas.paletteSize), client.welcome?.user.id ?? user);
  board.redraw();
  board.renderObjects();
  canvas.on("presence", () => people(canvas));
  people(canvas);
  canvas.on("chat", showChat);
  for (const m of (await canvas.chatHistory(undefined, 50)).messages) showChat(m);
  $("chat-form", HTMLElement).addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("chat-input", HTMLInputElement);
    const text = input.value.trim();
    input.value = "";
    if (text) canvas.chat(text).catch((e: unknown) => console.warn("chat", e));
  });
  $("chat-input", HTMLElement).addEventListener("input", () => canvas.activity("typing"));
  const rand = (n: number): number => Math.floor(Math.random() * n);
  $("add-token", HTMLElement).onclick = () => {
    const size = Math.max(2, Math.round(canvas.width / 24));
    const props = { label: name.slice(0, 2).toUpperCase(), color: `hsl(${rand(360)} 60% 45%)` };
    canvas.createObject({ kind: "token", x: rand(canvas.width - size), y: rand(canvas.height - size), w: size, h: size, props })
      .catch((e: unknown) => console.warn("token", e));
  };
  const fog = $("add-fog", HTMLElement);
  fog.hidden = canvas.role !== "gm";
  fog.onclick = () => {
    const size = Math.round(canvas.width / 4);
    canvas.createObject({ kind: "fog", x: rand(canvas.width - size), y: rand(canvas.height - size), w: size, h: size })
      .catch((e: unknown) => console.warn("fog", e));
  };
  document.body.dataset.ready = "true";
}

main().catch((e: unknown) => {
  $("status", HTMLElement).textContent = String(e);
  console.error(e);
});
