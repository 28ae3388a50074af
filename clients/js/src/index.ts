// @easel/client: a TypeScript client for Easel (docs/PROTOCOL.md).

export { EaselClient, jwtExp } from "./client.js";
export type { ClientEvents, ClientOptions, ConnectionState, TransportKind } from "./client.js";
export { Canvas } from "./canvas.js";
export type { CanvasEvents, CanvasOptions, ResetReason } from "./canvas.js";
export { Backoff, closeAction } from "./backoff.js";
export type { BackoffOptions, CloseAction } from "./backoff.js";
export { EaselError } from "./errors.js";
export type { ClientErrorCode } from "./errors.js";
export { unpackCells, readSnapshot } from "./snapshot.js";
export type { Snapshot } from "./snapshot.js";
export type { EncodingName } from "./codec.js";
export type * from "./protocol.js";
