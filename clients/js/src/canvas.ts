// One canvas as the application sees it: joined and resumed across
// reconnects, its events in `seq` order with gaps repaired, and local
// state (pixels, objects, presence) kept from the snapshot and the events.

import { Emitter } from "./emitter.js";
import { EaselError } from "./errors.js";
import type { HttpApi, StreamHandle } from "./http.js";
import type * as P from "./protocol.js";
import { readSnapshot } from "./snapshot.js";
import { CanvasState, type ObjectPages } from "./state.js";

/** What a canvas needs from its client. */
export interface CanvasHost {
  readonly transport: "websocket" | "sse";
  /** Whether commands can be sent now (joins included). */
  readonly ready: boolean;
  /** The server's cursor rate (updates per second). */
  readonly cursorHz: number;
  readonly http: HttpApi;
  request(cmd: P.ClientMessage): Promise<P.AckResult | undefined>;
  /** Sends without waiting for an ack (ephemeral commands). */
  send(cmd: P.ClientMessage): void;
  /** Reconnect delay for a canvas's own SSE stream. */
  streamDelay(attempt: number): number;
}

export interface CanvasOptions {
  /**
   * Receive this connection's own events back (default true: the local
   * state and the seq order then include them; without, each own durable
   * event is a gap in seq that is filled from the history).
   */
  echo?: boolean;
  /** Keep the pixels locally from the snapshot (default true). */
  pixels?: boolean;
  /** Keep the objects locally (default true). */
  objects?: boolean;
}

/** Why local state was reloaded. */
export type ResetReason = "joined" | "epoch_changed" | "history_unavailable" | "ahead" | "gap";

export interface CanvasEvents {
  /** Joined (again): the position after the join and how the resume went. */
  joined: { seq: number; epoch: string; resume: P.ResumeOutcome | null };
  /** Local state was reloaded from the snapshot: redraw everything. */
  reset: { seq: number; epoch: string; reason: ResetReason };
  draw: P.DrawEvent;
  cursor: P.CursorEvent;
  chat: P.ChatEvent;
  highlight: P.HighlightEvent;
  user_joined: P.UserJoined;
  user_left: P.UserLeft;
  activity: P.ActivityEvent;
  notice: P.Notice;
  object_created: P.ObjectCreated;
  object_updated: P.ObjectUpdated;
  object_moved: P.ObjectMoved;
  object_deleted: P.ObjectEvent;
  object_liked: P.ObjectEvent;
  cleared: P.Cleared;
  hidden: P.Hidden;
  resync: P.Resync;
  canvases_changed: P.CanvasesChanged;
  /**
   * Access to the canvas changed and the server let go of the join: with
   * role `none` the canvas is left for good; with another role it is
   * joined again (a `joined` follows).
   */
  access_changed: P.AccessChanged;
  /** Every event of the canvas, after the typed one. */
  event: P.ServerMessage;
  /** The presence list changed. */
  presence: Map<string, P.PresentUser>;
  /** A join, a gap repair or a reload failed (it is retried). */
  error: EaselError;
}

type Durable = P.ServerMessage & { seq?: number | null };

export class Canvas extends Emitter<CanvasEvents> {
  /** The last applied sequence number, and the epoch it belongs to. */
  seq = 0;
  epoch: string | undefined;
  width = 0;
  height = 0;
  paletteSize = 0;
  role: P.Role | undefined;
  readonly state: CanvasState;
  private wanted = false;
  private joining: Promise<void> | undefined;
  private held: Durable[] = [];
  private repairing = false;
  private stream: StreamHandle | undefined;
  private streamAttempts = 0;
  private joinAttempts = 0;
  private cursorAt = 0;
  private cursorPending: { x: number; y: number } | undefined;
  private cursorTimer: ReturnType<typeof setTimeout> | undefined;
  private firstJoin: { resolve: () => void; reject: (e: unknown) => void } | undefined;

  constructor(
    readonly id: string,
    private readonly host: CanvasHost,
    private readonly opts: CanvasOptions = {},
  ) {
    super();
    this.state = new CanvasState(opts.pixels ?? true, opts.objects ?? true);
  }

  /** The local pixels (palette indexes, row-major), once loaded. */
  get pixels(): Uint8Array | undefined {
    return this.state.pixels;
  }
  get objects(): Map<string, P.ObjectState> {
    return this.state.objects;
  }
  get presence(): Map<string, P.PresentUser> {
    return this.state.presence;
  }
  get joined(): boolean {
    return this.wanted && this.epoch !== undefined;
  }

  /**
   * Resolves once the canvas is first joined and its state loaded;
   * rejects when the join is refused for good (E007, E008, E009, E011).
   */
  ready: Promise<void> = Promise.resolve();

  /** Joins (and after every reconnect resumes); see [`ready`]. */
  join(): Promise<void> {
    this.wanted = true;
    this.ready = new Promise<void>((resolve, reject) => {
      this.firstJoin = { resolve, reject };
    });
    // Awaited or not: a refused join is also reported as an `error` event.
    this.ready.catch(() => undefined);
    if (this.host.ready) void this.rejoin();
    return this.ready;
  }

  /** Leaves: no more events; local state is kept as it was. */
  async leave(): Promise<void> {
    this.wanted = false;
    this.closeStream();
    if (this.host.ready && this.host.transport === "websocket") {
      await this.host.request({ type: "leave", canvas: this.id });
    }
  }

  /** The palette: `#rrggbb` per colour index (from the catalogue). */
  async palette(): Promise<string[]> {
    const def = (await this.host.http.getJson(`/api/canvases/${encodeURIComponent(this.id)}`)) as { palette: string[] };
    return def.palette;
  }

  /** The PNG of the canvas (a URL to fetch with the token). */
  pngUrl(): string {
    return this.host.http.url(`/api/canvases/${encodeURIComponent(this.id)}/snapshot?format=png`);
  }

  // ---- operations ----

  /** Draws pixels; resolves with the event's `seq`. */
  async draw(pixels: P.PixelInput[], key?: string): Promise<P.Published | undefined> {
    return (await this.host.request({ type: "draw", canvas: this.id, pixels, key })) as P.Published | undefined;
  }
  async chat(text: string, key?: string): Promise<P.Published | undefined> {
    return (await this.host.request({ type: "chat", canvas: this.id, text, key })) as P.Published | undefined;
  }
  /** Moves this user's cursor, at most at the server's cursor rate (the latest position wins). */
  cursor(x: number, y: number): void {
    this.cursorPending = { x, y };
    const interval = 1000 / Math.max(1, this.host.cursorHz);
    const wait = this.cursorAt + interval - Date.now();
    if (wait <= 0) return this.flushCursor();
    this.cursorTimer ??= setTimeout(() => this.flushCursor(), wait);
  }
  async highlight(target: { x: number; y: number } | { user: string }, durationMs = 3000): Promise<void> {
    await this.host.request({ type: "highlight", canvas: this.id, ...target, duration_ms: durationMs });
  }
  activity(state: P.ActivityState, at?: { x?: number; y?: number; object?: string }): void {
    if (this.host.transport === "websocket") this.host.send({ type: "activity", canvas: this.id, state, ...at });
  }
  async createObject(
    obj: { kind: string; x: number; y: number; w: number; h: number; props?: Record<string, P.JsonValue> },
    key?: string,
  ): Promise<P.Published | undefined> {
    return (await this.host.request({ type: "object_create", canvas: this.id, key, ...obj })) as P.Published;
  }
  async updateObject(object: string, props: Record<string, P.JsonValue>, key?: string): Promise<void> {
    await this.host.request({ type: "object_update", canvas: this.id, object, props, key });
  }
  async moveObject(object: string, to: { x: number; y: number; w?: number; h?: number }, key?: string): Promise<void> {
    await this.host.request({ type: "object_move", canvas: this.id, object, key, ...to });
  }
  async deleteObject(object: string, key?: string): Promise<void> {
    await this.host.request({ type: "object_delete", canvas: this.id, object, key });
  }
  async likeObject(object: string, key?: string): Promise<void> {
    await this.host.request({ type: "object_like", canvas: this.id, object, key });
  }
  async clear(key?: string): Promise<void> {
    await this.host.request({ type: "clear", canvas: this.id, key });
  }
  async presenceList(): Promise<P.PresenceList> {
    return (await this.host.request({ type: "presence", canvas: this.id })) as P.PresenceList;
  }
  async history(since: number, limit?: number): Promise<P.HistoryPage> {
    return (await this.host.request({ type: "history", canvas: this.id, since, limit })) as P.HistoryPage;
  }
  async chatHistory(before?: number, limit?: number): Promise<P.ChatPage> {
    return (await this.host.request({ type: "chat_history", canvas: this.id, before, limit })) as P.ChatPage;
  }
  /**
   * Every object of the canvas (all pages), and for each page the `seq` it
   * includes and the last id it covers (pages are read at different
   * moments: an event on an object applies on top when newer than its page).
   */
  async loadObjects(): Promise<ObjectPages> {
    const objects: P.ObjectState[] = [];
    const pages: ObjectPages["pages"] = [];
    let after: string | undefined;
    do {
      const page = (await this.host.request({ type: "objects", canvas: this.id, after })) as P.ObjectsPage;
      objects.push(...page.objects);
      after = page.next_after ?? undefined;
      pages.push({ upTo: after, seq: page.seq });
    } while (after);
    return { objects, pages };
  }

  private flushCursor(): void {
    clearTimeout(this.cursorTimer);
    this.cursorTimer = undefined;
    const at = this.cursorPending;
    if (!at || !this.joined || !this.host.ready) return;
    this.cursorPending = undefined;
    this.cursorAt = Date.now();
    this.host.send({ type: "cursor", canvas: this.id, x: at.x, y: at.y });
  }

  // ---- joining and resuming (called by the client) ----

  /** The connection came (back): join again, resuming from `seq`. */
  rejoin(): Promise<void> {
    if (!this.wanted) return Promise.resolve();
    this.joining ??= this.doJoin().finally(() => (this.joining = undefined));
    return this.joining;
  }

  /** The connection went: SSE streams close; state stays for the resume. */
  disconnected(): void {
    this.closeStream();
  }

  private async doJoin(): Promise<void> {
    try {
      if (this.host.transport === "sse") this.openStream();
      else await this.joinWebSocket();
      this.joinAttempts = 0;
    } catch (err) {
      const e = err instanceof EaselError ? err : new EaselError("transport", String(err));
      this.emit("error", e);
      // Not found, forbidden or invalid: joining again will not help.
      if (["E006", "E007", "E008", "E009", "E011"].includes(e.code)) {
        this.wanted = false;
        this.firstJoin?.reject(e);
        this.firstJoin = undefined;
      } else if (e.code !== "closed" && e.code !== "offline") {
        // Unavailable, timed out: try again (a reconnect rejoins anyway).
        const delay = this.host.streamDelay(this.joinAttempts++);
        setTimeout(() => this.host.ready && void this.rejoin(), delay);
      }
    }
  }

  private async joinWebSocket(): Promise<void> {
    const resume = this.epoch !== undefined ? { since: this.seq, epoch: this.epoch } : {};
    const cmd: P.ClientMessage = { type: "join", canvas: this.id, echo: this.opts.echo ?? true, ...resume };
    const ack = (await this.host.request(cmd)) as P.Joined;
    this.width = ack.width;
    this.height = ack.height;
    this.paletteSize = ack.palette_size;
    this.role = ack.role;
    this.state.setPresence(ack.presence);
    this.emit("presence", this.state.presence);
    await this.afterJoin(ack.seq, ack.epoch, ack.resume ?? null);
  }

  /** Applies a join's outcome: continue from `seq`, or reload. */
  private async afterJoin(seq: number, epoch: string, resume: P.ResumeOutcome | null): Promise<void> {
    const continued = resume === "replayed" && epoch === this.epoch;
    this.emit("joined", { seq, epoch, resume });
    if (!continued) {
      const reason: ResetReason = resume === null || resume === "replayed" ? "joined" : resume;
      this.held = [];
      this.seq = seq;
      this.epoch = epoch;
      await this.reload(reason);
    }
    this.streamAttempts = 0;
    this.firstJoin?.resolve();
    this.firstJoin = undefined;
  }

  /** Reloads the snapshot and the objects, then replays what came meanwhile. */
  private async reload(reason: ResetReason): Promise<void> {
    this.state.beginLoad();
    const path = `/api/canvases/${encodeURIComponent(this.id)}/snapshot`;
    const [snapshot, objects] = await Promise.all([
      this.state.wantsPixels ? this.host.http.call(path).then(readSnapshot) : undefined,
      this.state.wantsObjects ? this.loadObjects() : undefined,
    ]);
    if (snapshot) {
      this.width = snapshot.width;
      this.height = snapshot.height;
      this.paletteSize = snapshot.paletteSize;
    }
    this.state.finishLoad(snapshot, objects);
    this.emit("reset", { seq: this.seq, epoch: this.epoch ?? "", reason });
  }

  // ---- the event stream ----

  /** An event for this canvas, from whichever transport. */
  receive(msg: P.ServerMessage): void {
    const seq = (msg as Durable).seq;
    if (msg.type === "access_changed") {
      this.role = msg.role;
      this.emit("access_changed", msg);
      if (msg.role === "none") {
        this.wanted = false;
        this.closeStream();
      } else {
        // After a join in flight (its ack may predate the change).
        void (this.joining ?? Promise.resolve()).then(() => this.rejoin());
      }
      return;
    }
    if (msg.type === "resync") {
      this.emit("resync", msg);
      if (msg.reason === "history_unavailable" && this.host.transport === "sse") {
        void this.reload("history_unavailable");
      } else {
        void this.rejoin();
      }
      return;
    }
    if (typeof seq !== "number") return this.deliver(msg);
    if (seq <= this.seq) return; // a duplicate (after a repair or a resume)
    if (seq > this.seq + 1) {
      this.held.push(msg);
      this.held.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
      void this.repair();
      return;
    }
    this.seq = seq;
    this.deliver(msg);
    this.drainHeld();
  }

  private drainHeld(): void {
    while (this.held.length > 0 && (this.held[0]?.seq ?? 0) <= this.seq + 1) {
      const next = this.held.shift() as Durable;
      if ((next.seq ?? 0) === this.seq + 1) {
        this.seq += 1;
        this.deliver(next);
      }
    }
  }

  /** Fills a gap in `seq` from the history; reloads when it is gone. */
  private async repair(): Promise<void> {
    if (this.repairing) return;
    this.repairing = true;
    try {
      while (this.held.length > 0) {
        const page = await this.history(this.seq, 1000);
        if (!page.complete || page.epoch !== this.epoch) {
          this.held = this.held.filter((m) => (m.seq ?? 0) > page.seq);
          this.seq = page.seq;
          this.epoch = page.epoch;
          await this.reload("gap");
          this.drainHeld();
          continue;
        }
        for (const ev of page.events) this.receive(ev);
        if (page.events.length === 0) break;
      }
    } catch (err) {
      this.emit("error", err instanceof EaselError ? err : new EaselError("transport", String(err)));
    } finally {
      this.repairing = false;
    }
  }

  private deliver(msg: P.ServerMessage): void {
    if (this.state.apply(msg)) this.emit("presence", this.state.presence);
    (this.emit as (k: string, v: unknown) => void)(msg.type, msg);
    this.emit("event", msg);
  }

  // ---- SSE (the fallback transport) ----

  private openStream(): void {
    this.closeStream();
    const q = this.epoch !== undefined ? `?last_event_id=${this.seq}` : "";
    const path = `/sse/canvases/${encodeURIComponent(this.id)}${q}`;
    this.stream = this.host.http.stream(
      path,
      (m) => {
        if (m.event === "joined") {
          const j = JSON.parse(m.data) as { seq: number; epoch: string; resume: P.ResumeOutcome | null };
          const resume = j.resume ?? (this.epoch === undefined ? null : "replayed");
          void this.afterJoin(j.seq, j.epoch, resume).catch((e: unknown) => this.emit("error", e as EaselError));
          void this.loadPresence();
        } else if (m.event === "message" || m.event === "access_changed") {
          this.receive(JSON.parse(m.data) as P.ServerMessage);
        }
      },
      (err) => {
        this.stream = undefined;
        if (err instanceof EaselError && ["E008", "E009"].includes(err.code)) {
          this.emit("error", err);
          this.firstJoin?.reject(err);
          this.firstJoin = undefined;
          return;
        }
        const live = (): boolean => this.wanted && this.host.ready && this.host.transport === "sse";
        if (!live()) return;
        const delay = this.host.streamDelay(this.streamAttempts++);
        setTimeout(() => live() && !this.stream && this.openStream(), delay);
      },
    );
  }

  private async loadPresence(): Promise<void> {
    try {
      const list = (await this.host.http.getJson(`/api/canvases/${encodeURIComponent(this.id)}/presence`)) as P.PresenceList;
      this.state.setPresence(list.users);
      this.emit("presence", this.state.presence);
    } catch {
      // Presence is advisory; the next join loads it again.
    }
  }

  private closeStream(): void {
    this.stream?.close();
    this.stream = undefined;
  }
}
