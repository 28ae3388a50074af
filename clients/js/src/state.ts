// A canvas's local state: pixels from the snapshot, objects from their
// pages, presence from the join; then kept up to date by the events in
// seq order. Events that arrive while a snapshot loads wait and are
// applied after it when they are newer than what it includes.

import type * as P from "./protocol.js";
import type { Snapshot } from "./snapshot.js";

/** A canvas's objects as read page by page. */
export interface ObjectPages {
  objects: P.ObjectState[];
  /** In id order: the last id a page covers (none for the last page) and the `seq` it includes. */
  pages: { upTo: string | undefined; seq: number }[];
}

export class CanvasState {
  pixels: Uint8Array | undefined;
  width = 0;
  /** The `seq` the pixels include. */
  pixelSeq = 0;
  /** The objects' pages: which `seq` each object's state includes. */
  private objectPages: ObjectPages["pages"] = [];
  readonly objects = new Map<string, P.ObjectState>();
  readonly presence = new Map<string, P.PresentUser>();
  private loading: P.ServerMessage[] | undefined;

  constructor(
    readonly wantsPixels: boolean,
    readonly wantsObjects: boolean,
  ) {}

  /** A reload starts: pixel and object events wait until it ends. */
  beginLoad(): void {
    this.loading ??= [];
  }

  /** The snapshot and object page arrived: apply what waited that is newer. */
  finishLoad(snapshot: Snapshot | undefined, objects: ObjectPages | undefined): void {
    if (snapshot) {
      this.pixels = snapshot.cells;
      this.width = snapshot.width;
      this.pixelSeq = snapshot.seq;
    }
    if (objects) {
      this.objects.clear();
      for (const o of objects.objects) this.objects.set(o.id, o);
      this.objectPages = objects.pages;
    }
    const waiting = this.loading ?? [];
    this.loading = undefined;
    for (const msg of waiting) this.applyDurable(msg);
  }

  setPresence(users: P.PresentUser[]): void {
    this.presence.clear();
    for (const u of users) this.presence.set(u.id, u);
  }

  /** Applies one event; returns whether the presence list changed. */
  apply(msg: P.ServerMessage): boolean {
    switch (msg.type) {
      case "user_joined":
        this.presence.set(msg.user.id, msg.user);
        return true;
      case "user_left":
        return this.presence.delete(msg.user);
      case "activity": {
        const u = this.presence.get(msg.user.id);
        if (u) u.activity = msg.activity;
        return u !== undefined;
      }
      default:
        if (this.loading) this.loading.push(msg);
        else this.applyDurable(msg);
        return false;
    }
  }

  /** The `seq` the state of object `id` includes: its page's. */
  private objectSeq(id: string): number {
    for (const page of this.objectPages) if (page.upTo === undefined || id <= page.upTo) return page.seq;
    return this.objectPages.at(-1)?.seq ?? 0;
  }

  private applyDurable(msg: P.ServerMessage): void {
    const seq = "seq" in msg && typeof msg.seq === "number" ? msg.seq : 0;
    const pixels = seq > this.pixelSeq ? this.pixels : undefined;
    // An event on an object applies when newer than the page holding it.
    const newer = (id: string): boolean => this.wantsObjects && seq > this.objectSeq(id);
    switch (msg.type) {
      case "draw":
        if (pixels) for (const p of msg.pixels) pixels[p.y * this.width + p.x] = p.color;
        break;
      case "cleared":
        pixels?.fill(0);
        for (const id of [...this.objects.keys()]) if (newer(id)) this.objects.delete(id);
        break;
      case "object_created":
        if (newer(msg.object.id)) this.objects.set(msg.object.id, msg.object);
        break;
      case "object_updated": {
        const o = newer(msg.object) ? this.objects.get(msg.object) : undefined;
        if (o) {
          for (const [k, v] of Object.entries(msg.props)) {
            if (v === null) Reflect.deleteProperty(o.props, k);
            else o.props[k] = v;
          }
        }
        break;
      }
      case "object_moved": {
        const o = newer(msg.object) ? this.objects.get(msg.object) : undefined;
        if (o) Object.assign(o, { x: msg.x, y: msg.y }, msg.w != null ? { w: msg.w } : {}, msg.h != null ? { h: msg.h } : {});
        break;
      }
      case "object_deleted":
        if (newer(msg.object)) this.objects.delete(msg.object);
        break;
      case "object_liked": {
        const o = newer(msg.object) ? this.objects.get(msg.object) : undefined;
        if (o) o.likes += 1;
        break;
      }
      default:
        break;
    }
  }
}
