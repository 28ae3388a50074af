// Errors the SDK reports: the server's (a stable `code` such as "E004")
// and its own ("timeout", "offline", "closed", "queue_full").

import type { ErrorCode } from "./protocol.js";

/** Codes the SDK itself gives, beside the server's `E0xx` codes. */
export type ClientErrorCode = "timeout" | "offline" | "closed" | "queue_full" | "transport" | "disconnected";

/** A refused or failed request. */
export class EaselError extends Error {
  /** The server's error code (`E004`, ...) or the SDK's own. */
  readonly code: ErrorCode | ClientErrorCode;
  /** When a retry may succeed, from the server (rate limits, backlog). */
  readonly retryAfterMs: number | undefined;
  /** The HTTP status, for errors that came over REST. */
  readonly status: number | undefined;

  constructor(
    code: ErrorCode | ClientErrorCode,
    message: string,
    retryAfterMs?: number,
    status?: number,
  ) {
    super(`${code}: ${message}`);
    this.name = "EaselError";
    this.code = code;
    this.retryAfterMs = retryAfterMs;
    this.status = status;
  }

  /**
   * Whether the command may be resent (with its operation key, so it is
   * applied at most once): rate limits, an unavailable or backlogged store.
   */
  get retryable(): boolean {
    return this.code === "E004" || this.code === "E012" || this.code === "E013";
  }
}
