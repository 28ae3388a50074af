// The gateway's HTTP side: REST calls and SSE streams, authenticated with
// the same token as the WebSocket, errors as EaselError.

import { EaselError } from "./errors.js";
import type { ErrorCode } from "./protocol.js";
import { readSse, type SseMessage } from "./sse.js";

/** An open SSE stream; `close` ends it without calling `onEnd`. */
export interface StreamHandle {
  close(): void;
}

/** `ws://host:port/ws` -> `http://host:port` (and wss -> https). */
export function httpBase(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = url.pathname.replace(/\/ws\/?$/, "");
  url.search = "";
  return url.toString().replace(/\/$/, "");
}

export class HttpApi {
  constructor(
    private readonly base: () => string,
    private readonly token: () => Promise<string>,
    private readonly fetchFn: typeof fetch,
  ) {}

  /** A full URL for `path` on the current gateway. */
  url(path: string): string {
    return this.base() + path;
  }

  /** A request with the token; a non-2xx answer becomes its EaselError. */
  async call(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${await this.token()}`);
    let resp: Response;
    try {
      resp = await this.fetchFn(this.url(path), { ...init, headers });
    } catch (err) {
      throw new EaselError("transport", `${path}: ${String(err)}`);
    }
    if (!resp.ok) throw await errorOf(resp);
    return resp;
  }

  /** POSTs JSON and returns the JSON answer. */
  async post(path: string, body: unknown): Promise<unknown> {
    const resp = await this.call(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return resp.json();
  }

  async getJson(path: string): Promise<unknown> {
    return (await this.call(path)).json();
  }

  /**
   * Opens an SSE stream; `onEnd` is called once when it ends or fails
   * (not after `close`).
   */
  stream(
    path: string,
    onMessage: (msg: SseMessage) => void,
    onEnd: (err: unknown) => void,
  ): StreamHandle {
    const abort = new AbortController();
    let closed = false as boolean;
    void (async () => {
      try {
        const resp = await this.call(path, {
          headers: { accept: "text/event-stream" },
          signal: abort.signal,
        });
        if (!resp.body) throw new EaselError("transport", "stream without a body");
        await readSse(resp.body, (m) => {
          if (!closed) onMessage(m);
        });
        if (!closed) onEnd(undefined);
      } catch (err) {
        if (!closed) onEnd(err);
      }
    })();
    return {
      close() {
        closed = true;
        abort.abort();
      },
    };
  }
}

async function errorOf(resp: Response): Promise<EaselError> {
  let code: ErrorCode | "transport" = "transport";
  let message = `HTTP ${resp.status}`;
  let retry: number | undefined;
  try {
    const body = (await resp.json()) as { code?: ErrorCode; message?: string; retry_after_ms?: number };
    if (body.code) code = body.code;
    if (body.message) message = body.message;
    retry = body.retry_after_ms;
  } catch {
    // Not a JSON error body (a proxy's page): keep the status.
  }
  return new EaselError(code, message, retry, resp.status);
}
