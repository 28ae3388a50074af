// The connection manager: one WebSocket (or, when WebSockets cannot
// connect, SSE streams and REST), reconnects with backoff aware of close
// codes, resumes every canvas, resends unacknowledged durable commands with
// their operation keys, and refreshes the token before it expires.

import { Backoff, type BackoffOptions, type CloseAction, closeAction } from "./backoff.js";
import { Canvas, type CanvasHost, type CanvasOptions } from "./canvas.js";
import { type Codec, codecFor, type EncodingName } from "./codec.js";
import { Emitter } from "./emitter.js";
import { EaselError } from "./errors.js";
import { HttpApi, httpBase, type StreamHandle } from "./http.js";
import type * as P from "./protocol.js";
import { isDurable, keyMaker, type Pending, Requests } from "./requests.js";

export interface ClientOptions {
  /** Gateway WebSocket URL(s), e.g. `ws://127.0.0.1:8080/ws`; reconnects rotate through them. */
  url: string | string[];
  /** A token; or give `getToken`, called to connect and again when the token is refused or expiring. */
  token?: string;
  getToken?: () => string | Promise<string>;
  encoding?: EncodingName;
  /** The WebSocket class (default: the global one). */
  WebSocket?: typeof WebSocket;
  fetch?: typeof fetch;
  /** The HTTP base for REST and SSE (default: from the WebSocket URL). */
  httpUrl?: string;
  backoff?: BackoffOptions;
  /** Per request, and for a connection to be welcomed (default 10,000 ms). */
  requestTimeoutMs?: number;
  /** Heartbeat and latency measurement (default 10,000 ms). */
  pingIntervalMs?: number;
  /** WebSocket attempts that fail before switching to SSE + REST (default 3; 0: never). */
  fallbackAfter?: number;
  /** In the fallback, how often to try the WebSocket again (default 15,000 ms). */
  wsRetryMs?: number;
  /** Durable commands kept while offline (default 1,000). */
  offlineQueueMax?: number;
  /** Resends of a durable command refused with E004, E012 or E013 (default 10). */
  maxRetries?: number;
  /** How long before `exp` the token is refreshed (default 30,000 ms). */
  refreshAheadMs?: number;
}

export type ConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting";
export type TransportKind = "websocket" | "sse";

export interface ClientEvents {
  state: ConnectionState;
  transport: TransportKind;
  welcome: P.Welcome;
  /** Round trip of the last ping, in ms. */
  latency: number;
  closed: { code: number; reason: string };
  /** A server error that answers no request, or a fatal one. */
  error: EaselError;
  /** A command was refused with E004; durable ones are resent after the wait. */
  rate_limited: { command: P.ClientMessage; retryAfterMs: number };
  notification: P.Notification;
  announcement: P.Announcement;
  user_online: P.UserOnline;
  user_offline: P.UserOffline;
  canvases_changed: P.CanvasesChanged;
  /** Every message from the server. */
  message: P.ServerMessage;
}

type Channel = "global" | "online";
const CHANNEL_STREAMS = {
  notifications: "/sse/notifications",
  global: "/sse/system",
  online: "/sse/online",
} as const;

export class EaselClient extends Emitter<ClientEvents> implements CanvasHost {
  state: ConnectionState = "disconnected";
  transport: TransportKind = "websocket";
  latency: number | undefined;
  welcome: P.Welcome | undefined;
  readonly http: HttpApi;
  private ws: WebSocket | undefined;
  private codec: Codec | undefined;
  private readonly urls: string[];
  private urlIndex = 0;
  private token: string | undefined;
  private readonly backoff: Backoff;
  private readonly requests: Requests;
  private nextId = 1;
  private readonly makeKey = keyMaker();
  private readonly canvases = new Map<string, Canvas>();
  private readonly channels = new Set<Channel>();
  private streams = new Map<string, StreamHandle>();
  private readonly streamAttempts = new Map<string, number>();
  private wsFailures = 0;
  private deliberate = false;
  /** Welcomed (or in the fallback): joins and reads may go out. */
  private open_ = false;
  /** Canvases resumed: queued durable commands have gone out. */
  private resumed = false;
  private awaitingPong = false;
  private timers: Partial<Record<"reconnect" | "ping" | "refresh" | "probe" | "stable", ReturnType<typeof setTimeout>>> = {};

  constructor(private readonly opts: ClientOptions) {
    super();
    this.urls = Array.isArray(opts.url) ? opts.url : [opts.url];
    if (this.urls.length === 0) throw new Error("no gateway URL");
    this.token = opts.token;
    this.backoff = new Backoff(opts.backoff);
    this.requests = new Requests(opts.offlineQueueMax ?? 1000);
    const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.http = new HttpApi(() => this.opts.httpUrl ?? httpBase(this.currentUrl()), () => this.currentToken(), fetchFn);
  }

  /** Whether commands can go out now (CanvasHost). */
  get ready(): boolean {
    return this.open_;
  }
  get cursorHz(): number {
    return this.welcome?.limits.cursor_hz || 20;
  }
  /** Durable commands waiting for the connection. */
  get queued(): number {
    return this.requests.queued;
  }

  /** Connects (and keeps reconnecting until `disconnect`). */
  connect(): void {
    if (this.state !== "disconnected") return;
    this.deliberate = false;
    this.setState("connecting");
    void this.openSocket(false);
  }

  /** Closes for good: pending and queued requests fail with `closed`. */
  disconnect(): void {
    this.deliberate = true;
    for (const t of Object.values(this.timers)) clearTimeout(t);
    this.timers = {};
    this.requests.failAll(new EaselError("closed", "disconnected"));
    this.dropConnection();
    this.ws?.close(1000, "bye");
    this.ws = undefined;
    this.setState("disconnected");
  }

  /**
   * The app's backend disconnected this user (close 4004, or the SSE
   * `disconnected` event): no reconnect; `connect()` again when the app
   * says so (joined canvases are joined again then).
   */
  private disconnectedByServer(): void {
    this.emit("error", new EaselError("disconnected", "the server disconnected this user (4004)"));
    this.disconnect();
  }

  /** A canvas, joined now and resumed after every reconnect. */
  canvas(id: string, opts?: CanvasOptions): Canvas {
    let c = this.canvases.get(id);
    if (!c) {
      c = new Canvas(id, this, opts);
      this.canvases.set(id, c);
      void c.join();
    }
    return c;
  }

  /** Leaves a canvas and forgets it. */
  async leave(id: string): Promise<void> {
    const c = this.canvases.get(id);
    this.canvases.delete(id);
    await c?.leave();
  }

  /** Receives `global` (announcements, canvas changes) or `online`. */
  async subscribe(channel: Channel): Promise<void> {
    this.channels.add(channel);
    if (this.open_) await this.openChannel(channel);
  }

  async unsubscribe(channel: Channel): Promise<void> {
    this.channels.delete(channel);
    this.streams.get(channel)?.close();
    this.streams.delete(channel);
    if (this.open_ && this.transport === "websocket") await this.request({ type: "unsubscribe", channel });
  }

  /**
   * Sends a command and resolves with its ack's result, or rejects with an
   * EaselError. Durable commands get an operation key when they have none,
   * wait in the offline queue while disconnected (until every canvas has
   * resumed), and are resent with the key after a reconnect or a retryable
   * refusal. Other commands fail with `offline` while disconnected.
   */
  request(cmd: P.ClientMessage): Promise<P.AckResult | undefined> {
    const durable = isDurable(cmd);
    const keyed = durable && !("key" in cmd && cmd.key) ? { ...cmd, key: this.makeKey() } : cmd;
    return new Promise((resolve, reject) => {
      const p: Pending = { cmd: { ...keyed, id: this.nextId++ }, resolve, reject, durable, attempts: 0 };
      if (durable && !this.resumed) {
        if (!this.requests.enqueue(p)) reject(new EaselError("queue_full", "the offline queue is full"));
      } else if (!this.open_) {
        reject(new EaselError("offline", `${cmd.type}: not connected`));
      } else {
        this.transmit(p);
      }
    });
  }

  /** Sends an ephemeral command without an id (CanvasHost). */
  send(cmd: P.ClientMessage): void {
    if (!this.open_) return;
    if (this.transport === "websocket") {
      this.ws?.send(this.codecOrThrow().encode(cmd));
    } else if ("canvas" in cmd && cmd.type !== "activity") {
      this.http.post(`/api/canvases/${encodeURIComponent(cmd.canvas)}/commands`, cmd).catch(() => undefined);
    }
  }

  /** Delay before a canvas's SSE stream reopens (CanvasHost). */
  streamDelay(attempt: number): number {
    const max = this.opts.backoff?.maxMs ?? 10_000;
    return Math.random() * Math.min(max, (this.opts.backoff?.minMs ?? 250) * 2 ** attempt);
  }

  // ---- the WebSocket ----

  private currentUrl(): string {
    return this.urls[this.urlIndex % this.urls.length] as string;
  }

  private async currentToken(): Promise<string> {
    if (this.token === undefined) {
      if (!this.opts.getToken) throw new EaselError("E002", "no token: give token or getToken");
      this.token = await this.opts.getToken();
    }
    return this.token;
  }

  private codecOrThrow(): Codec {
    if (!this.codec) throw new Error("codec not loaded");
    return this.codec;
  }

  /** One WebSocket attempt; `probe`: trying to leave the fallback. */
  private async openSocket(probe: boolean): Promise<void> {
    let ws: WebSocket;
    let token: string;
    try {
      token = await this.currentToken();
      this.codec ??= await codecFor(this.opts.encoding ?? "json");
      const WS = this.opts.WebSocket ?? globalThis.WebSocket;
      ws = new WS(this.currentUrl(), this.codec.subprotocol);
    } catch (err) {
      const e = err instanceof EaselError ? err : new EaselError("transport", String(err));
      this.emit("error", e);
      return this.socketClosed(undefined, 1006, e.message, false, probe);
    }
    const codec = this.codecOrThrow();
    ws.binaryType = "arraybuffer";
    if (!probe) this.ws = ws;
    let welcomed = false;
    let opened = false;
    const giveUp = (reason: string): void => this.abandon(ws, reason, welcomed, probe);
    const timeout = setTimeout(() => giveUp("no welcome in time"), this.opts.requestTimeoutMs ?? 10_000);
    ws.onopen = () => {
      opened = true;
      ws.send(codec.encode({ type: "handshake", token }));
    };
    ws.onmessage = (ev: MessageEvent) => {
      let msg: P.ServerMessage;
      try {
        msg = codec.decode(ev.data);
      } catch {
        return;
      }
      if (msg.type === "welcome" && !welcomed) {
        welcomed = true;
        clearTimeout(timeout);
        this.welcomed(ws, msg);
      } else if (ws === this.ws) {
        this.dispatch(msg);
      } else if (msg.type === "error") {
        this.emit("error", new EaselError(msg.code, msg.message, msg.retry_after_ms ?? undefined));
      }
    };
    ws.onclose = (ev: CloseEvent) => {
      clearTimeout(timeout);
      this.socketClosed(ws, ev.code, ev.reason, welcomed, probe && !welcomed);
    };
    // Browsers follow an error with a close; some runtimes (Node's
    // undici) do not after a refused upgrade: give up on the socket then.
    ws.onerror = () => {
      if (!opened) {
        clearTimeout(timeout);
        giveUp("the WebSocket could not connect");
      } else {
        setTimeout(() => ws.readyState === ws.CLOSED && ws.onclose && giveUp("the WebSocket failed"), 1_000);
      }
    };
  }

  /** Gives up on a socket at once (no welcome, no pong): its close may take long. */
  private abandon(ws: WebSocket, reason: string, welcomed: boolean, probe: boolean): void {
    ws.onclose = null;
    ws.onmessage = null;
    ws.onerror = null;
    try {
      ws.close(4000, reason);
    } catch {
      // Already closing.
    }
    this.socketClosed(ws, 1006, reason, welcomed, probe && !welcomed);
  }

  private welcomed(ws: WebSocket, welcome: P.Welcome): void {
    if (ws !== this.ws) {
      // A probe from the fallback worked: back to the WebSocket.
      this.leaveFallback();
      this.ws = ws;
    }
    this.welcome = welcome;
    this.wsFailures = 0;
    this.setTransport("websocket");
    this.open_ = true;
    this.emit("welcome", welcome);
    this.timers.stable = setTimeout(() => this.backoff.reset(), 5_000);
    this.startPing(ws);
    this.scheduleRefresh();
    void this.resume();
  }

  /** After a (re)connect: resume every canvas and channel, then send what waited. */
  private async resume(): Promise<void> {
    await Promise.all([...this.canvases.values()].map((c) => c.rejoin()));
    await Promise.all([...this.channels].map((ch) => this.openChannel(ch).catch(() => undefined)));
    if (!this.open_) return;
    this.resumed = true;
    this.setState("connected");
    for (const p of this.requests.drain()) this.transmit(p);
  }

  private async openChannel(channel: Channel): Promise<void> {
    if (this.transport === "websocket") {
      await this.request({ type: "subscribe", channel });
    } else {
      this.openStream(channel);
    }
  }

  private socketClosed(ws: WebSocket | undefined, code: number, reason: string, welcomed: boolean, probe: boolean): void {
    if (this.deliberate) return;
    if (probe) {
      if (this.transport === "sse" && this.open_) {
        this.timers.probe = setTimeout(() => void this.openSocket(true), this.opts.wsRetryMs ?? 15_000);
      }
      return;
    }
    if (ws !== this.ws) return;
    this.ws = undefined;
    this.dropConnection();
    this.emit("closed", { code, reason });
    if (!welcomed) this.wsFailures += 1;
    let action: CloseAction = closeAction(code, false);
    if (action === "stop") return this.disconnectedByServer();
    if (action === "token") {
      if (!this.opts.getToken) {
        this.emit("error", new EaselError("E002", `closed ${code}: the token was refused and there is no getToken`));
        this.requests.failAll(new EaselError("E002", "the token was refused"));
        return this.setState("disconnected");
      }
      this.token = undefined;
      action = "backoff";
    }
    const fallbackAfter = this.opts.fallbackAfter ?? 3;
    if (fallbackAfter > 0 && this.wsFailures >= fallbackAfter) return this.enterFallback();
    this.urlIndex += 1;
    this.setState("reconnecting");
    this.timers.reconnect = setTimeout(() => void this.openSocket(false), this.backoff.next(action));
  }

  /** The connection is gone: stop its timers; unacked durable commands wait for the next. */
  private dropConnection(): void {
    this.open_ = false;
    this.resumed = false;
    for (const name of ["ping", "refresh", "stable", "probe"] as const) clearTimeout(this.timers[name]);
    this.requests.connectionLost();
    for (const c of this.canvases.values()) c.disconnected();
    for (const s of this.streams.values()) s.close();
    this.streams.clear();
  }

  private startPing(ws: WebSocket): void {
    this.awaitingPong = false;
    const ping = (): void => {
      if (this.awaitingPong) return this.abandon(ws, "no pong in time", true, false);
      this.awaitingPong = true;
      ws.send(this.codecOrThrow().encode({ type: "ping", ts: Date.now() }));
      this.timers.ping = setTimeout(ping, this.opts.pingIntervalMs ?? 10_000);
    };
    ping();
  }

  /** Refreshes the token `refreshAheadMs` before its `exp`. */
  private scheduleRefresh(): void {
    clearTimeout(this.timers.refresh);
    const exp = this.token ? jwtExp(this.token) : undefined;
    if (exp === undefined || !this.opts.getToken) return;
    const wait = Math.max(1_000, exp * 1000 - Date.now() - (this.opts.refreshAheadMs ?? 30_000));
    this.timers.refresh = setTimeout(() => void this.refresh(), wait);
  }

  private async refresh(): Promise<void> {
    try {
      const token = await (this.opts.getToken as () => string | Promise<string>)();
      if (this.transport === "websocket") await this.request({ type: "refresh", token });
      this.token = token;
      this.scheduleRefresh();
    } catch (err) {
      this.emit("error", err instanceof EaselError ? err : new EaselError("transport", String(err)));
    }
  }

  // ---- requests and replies ----

  private transmit(p: Pending): void {
    if (!this.open_) {
      if (p.durable && this.requests.enqueue(p)) return;
      return p.reject(new EaselError(p.durable ? "queue_full" : "offline", `${p.cmd.type}: not connected`));
    }
    if (this.transport === "sse") return this.viaHttp(p);
    this.requests.sent(p, this.opts.requestTimeoutMs ?? 10_000, (q) =>
      q.reject(new EaselError("timeout", `${q.cmd.type}: no reply in time`)),
    );
    this.ws?.send(this.codecOrThrow().encode(p.cmd));
  }

  /** The fallback: a canvas command as a REST request. */
  private viaHttp(p: Pending): void {
    const cmd = p.cmd;
    if (!("canvas" in cmd) || ["join", "leave", "activity"].includes(cmd.type)) {
      return p.reject(new EaselError("offline", `${cmd.type}: needs a WebSocket`));
    }
    p.attempts += 1;
    this.http
      .post(`/api/canvases/${encodeURIComponent(cmd.canvas)}/commands`, cmd)
      .then((ack) => p.resolve((ack as P.Ack).result ?? undefined))
      .catch((err: unknown) => this.failed(p, err instanceof EaselError ? err : new EaselError("transport", String(err))));
  }

  /** A refusal: durable commands are resent after the wait when it may help. */
  private failed(p: Pending, err: EaselError): void {
    const retry = err.retryable || (err.code === "transport" && this.transport === "sse");
    if (err.code === "E004") this.emit("rate_limited", { command: p.cmd, retryAfterMs: err.retryAfterMs ?? 0 });
    if (p.durable && retry && p.attempts <= (this.opts.maxRetries ?? 10)) {
      const wait = err.retryAfterMs ?? this.streamDelay(p.attempts);
      setTimeout(() => this.transmit(p), wait);
      return;
    }
    p.reject(err);
  }

  private dispatch(msg: P.ServerMessage): void {
    switch (msg.type) {
      case "ack":
        this.requests.take(Number(msg.id))?.resolve(msg.result ?? undefined);
        break;
      case "error": {
        const err = new EaselError(msg.code, msg.message, msg.retry_after_ms ?? undefined);
        const p = msg.id != null ? this.requests.take(Number(msg.id)) : undefined;
        if (p) this.failed(p, err);
        else this.emit("error", err);
        break;
      }
      case "pong":
        this.awaitingPong = false;
        if (typeof msg.ts === "number") {
          this.latency = Date.now() - msg.ts;
          this.emit("latency", this.latency);
        }
        break;
      case "notification":
      case "announcement":
      case "user_online":
      case "user_offline":
        (this.emit as (k: string, v: unknown) => void)(msg.type, msg);
        break;
      case "canvases_changed":
        this.emit("canvases_changed", msg);
        this.canvases.get(msg.canvas)?.receive(msg);
        break;
      default:
        if ("canvas" in msg) this.canvases.get(msg.canvas)?.receive(msg);
    }
    this.emit("message", msg);
  }

  // ---- the fallback: SSE to receive, REST to send ----

  /**
   * WebSockets keep failing: the user's notification stream stands for the
   * connection. Once it opens, canvases resume over SSE and commands go
   * over REST; when it fails or ends, the next attempt is a WebSocket
   * again (with backoff), so the client alternates until one works.
   */
  private enterFallback(): void {
    this.setTransport("sse");
    const handle = this.http.stream(
      CHANNEL_STREAMS.notifications,
      (m) => {
        if (m.event === "subscribed" && !this.open_) {
          this.open_ = true;
          this.timers.stable = setTimeout(() => this.backoff.reset(), 5_000);
          void this.resume();
          this.timers.probe = setTimeout(() => void this.openSocket(true), this.opts.wsRetryMs ?? 15_000);
        } else if (m.event === "message") {
          this.dispatch(JSON.parse(m.data) as P.ServerMessage);
        } else if (m.event === "disconnected") {
          this.disconnectedByServer();
        }
      },
      (err) => {
        if (this.streams.get("notifications") !== handle || this.deliberate) return;
        this.streams.delete("notifications");
        clearTimeout(this.timers.probe);
        if (this.open_) this.dropConnection();
        const reason = err instanceof Error ? err.message : "the event stream ended";
        this.emit("closed", { code: 1006, reason });
        this.urlIndex += 1;
        this.setState("reconnecting");
        this.timers.reconnect = setTimeout(() => void this.openSocket(false), this.backoff.next("backoff"));
      },
    );
    this.streams.set("notifications", handle);
  }

  private leaveFallback(): void {
    clearTimeout(this.timers.probe);
    const notifications = this.streams.get("notifications");
    this.streams.delete("notifications");
    notifications?.close();
    this.dropConnection();
  }

  private openStream(name: Channel): void {
    this.streams.get(name)?.close();
    const handle = this.http.stream(
      CHANNEL_STREAMS[name],
      (m) => {
        this.streamAttempts.set(name, 0);
        if (m.event === "message") this.dispatch(JSON.parse(m.data) as P.ServerMessage);
      },
      () => {
        if (this.streams.get(name) !== handle || this.transport !== "sse") return;
        this.streams.delete(name);
        const attempt = this.streamAttempts.get(name) ?? 0;
        this.streamAttempts.set(name, attempt + 1);
        setTimeout(() => this.transport === "sse" && this.open_ && this.openStream(name), this.streamDelay(attempt));
      },
    );
    this.streams.set(name, handle);
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }

  private setTransport(t: TransportKind): void {
    if (this.transport === t) return;
    this.transport = t;
    this.emit("transport", t);
  }
}

/** A JWT's `exp` (seconds), without verifying it. */
export function jwtExp(token: string): number | undefined {
  try {
    const part = token.split(".")[1] ?? "";
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp : undefined;
  } catch {
    return undefined;
  }
}
