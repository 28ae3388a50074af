// Requests in flight and the offline queue: each command with an id gets
// one reply; durable commands carry an operation key, so a resend after a
// lost ack (a reconnect, a rate limit, an unavailable store) is applied
// once and answered with the first one's `seq`.

import { EaselError } from "./errors.js";
import type { AckResult, ClientMessage } from "./protocol.js";

/** Commands that change a canvas's durable state. */
const DURABLE = new Set(["draw", "chat", "object_create", "object_update", "object_move", "object_delete", "object_like", "clear"]);

export function isDurable(cmd: ClientMessage): boolean {
  return DURABLE.has(cmd.type);
}

/** A random operation key prefix per client, then a counter. */
export function keyMaker(): () => string {
  const bytes = new Uint8Array(8);
  globalThis.crypto.getRandomValues(bytes);
  const prefix = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  let n = 0;
  return () => `${prefix}-${(n++).toString(36)}`;
}

export interface Pending {
  cmd: ClientMessage & { id: number };
  resolve: (result: AckResult | undefined) => void;
  reject: (err: EaselError) => void;
  durable: boolean;
  /** Sends so far (a durable command is resent after a retryable refusal). */
  attempts: number;
  timer?: ReturnType<typeof setTimeout>;
}

/** Requests sent and awaiting their reply, and those waiting to be sent. */
export class Requests {
  private readonly inFlight = new Map<number, Pending>();
  /** Durable commands waiting for a connection, oldest first. */
  private queue: Pending[] = [];

  constructor(private readonly queueMax: number) {}

  get queued(): number {
    return this.queue.length;
  }

  /** Waits for a connection; false when the queue is full. */
  enqueue(p: Pending): boolean {
    if (this.queue.length >= this.queueMax) return false;
    this.queue.push(p);
    return true;
  }

  /** Takes the waiting commands, oldest first. */
  drain(): Pending[] {
    const q = this.queue;
    this.queue = [];
    return q;
  }

  sent(p: Pending, timeoutMs: number, onTimeout: (p: Pending) => void): void {
    p.attempts += 1;
    this.inFlight.set(p.cmd.id, p);
    clearTimeout(p.timer);
    p.timer = setTimeout(() => {
      this.inFlight.delete(p.cmd.id);
      onTimeout(p);
    }, timeoutMs);
  }

  /** The request a reply answers, no longer in flight. */
  take(id: number): Pending | undefined {
    const p = this.inFlight.get(id);
    if (p) {
      clearTimeout(p.timer);
      this.inFlight.delete(id);
    }
    return p;
  }

  /**
   * The connection is gone: durable commands whose ack did not come go
   * back to the front of the queue, in the order they were sent (their
   * keys make the resend safe); others fail with `closed`.
   */
  connectionLost(): void {
    const resend: Pending[] = [];
    for (const p of [...this.inFlight.values()].sort((a, b) => a.cmd.id - b.cmd.id)) {
      clearTimeout(p.timer);
      if (p.durable) resend.push(p);
      else p.reject(new EaselError("closed", `${p.cmd.type}: the connection closed before the reply`));
    }
    this.inFlight.clear();
    this.queue = [...resend, ...this.queue];
  }

  /** The client is shutting down: everything fails. */
  failAll(err: EaselError): void {
    for (const p of [...this.inFlight.values(), ...this.queue]) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.inFlight.clear();
    this.queue = [];
  }
}
