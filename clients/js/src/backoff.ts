// Reconnect delays: exponential backoff with full jitter, aware of why
// the connection closed.

/** Reconnect delay bounds, in milliseconds. */
export interface BackoffOptions {
  /** The first retry's upper bound (default 250). */
  minMs?: number;
  /** The largest delay (default 10,000). */
  maxMs?: number;
  /** The growth per failed attempt (default 2). */
  factor?: number;
  /** The least delay after an abuse or capacity close: 4029, 4011 (default 5,000). */
  penaltyMs?: number;
}

/** What a close code asks of the client. */
export type CloseAction =
  /** Stop: the client closed deliberately, or the server disconnected the user. */
  | "stop"
  /** Reconnect at once (to another gateway): the gateway is draining. */
  | "now"
  /** Get a new token, then reconnect with backoff. */
  | "token"
  /** Back off for at least the penalty: abuse or capacity. */
  | "penalty"
  /** Reconnect with backoff. */
  | "backoff";

/** The action for a WebSocket close code (docs/PROTOCOL.md, "Close codes"). */
export function closeAction(code: number, deliberate: boolean): CloseAction {
  if (deliberate) return "stop";
  switch (code) {
    case 4004:
      return "stop";
    case 1012:
      return "now";
    case 4001:
    case 4003:
      return "token";
    case 4011:
    case 4029:
      return "penalty";
    default:
      return "backoff";
  }
}

/** Delays for consecutive reconnect attempts. */
export class Backoff {
  private attempt = 0;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  readonly penaltyMs: number;

  constructor(
    opts: BackoffOptions = {},
    private readonly random: () => number = Math.random,
  ) {
    this.minMs = opts.minMs ?? 250;
    this.maxMs = opts.maxMs ?? 10_000;
    this.factor = opts.factor ?? 2;
    this.penaltyMs = opts.penaltyMs ?? 5_000;
  }

  /** The delay before the next attempt, for a close that asked `action`. */
  next(action: CloseAction): number {
    const cap = Math.min(this.maxMs, this.minMs * this.factor ** this.attempt);
    this.attempt += 1;
    // Full jitter: a uniform delay up to the cap spreads a crowd of clients
    // that lost the same gateway over the whole interval.
    const jittered = this.random() * cap;
    switch (action) {
      case "now":
        // A drain hands connections back in turns already; a little jitter
        // keeps the clients of one turn apart.
        return this.random() * 100;
      case "penalty":
        return this.penaltyMs + jittered;
      default:
        return jittered;
    }
  }

  /** Consecutive attempts so far. */
  get attempts(): number {
    return this.attempt;
  }

  /** After a connection that stayed up: start from the smallest delay. */
  reset(): void {
    this.attempt = 0;
  }
}
