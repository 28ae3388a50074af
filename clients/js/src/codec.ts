// Frame encodings: JSON text frames (`easel.v1.json`), or MessagePack
// binary frames (`easel.v1.msgpack`) with the codec loaded only when chosen.

import type { ClientMessage, ServerMessage } from "./protocol.js";

export type EncodingName = "json" | "msgpack";

/** Encodes commands and decodes server frames for one encoding. */
export interface Codec {
  readonly subprotocol: string;
  encode(msg: ClientMessage): string | Uint8Array;
  decode(frame: unknown): ServerMessage;
}

const jsonCodec: Codec = {
  subprotocol: "easel.v1.json",
  encode: (msg) => JSON.stringify(msg),
  decode: (frame) => {
    if (typeof frame !== "string") throw new Error("binary frame on a JSON connection");
    return JSON.parse(frame) as ServerMessage;
  },
};

/** The codec for an encoding; MessagePack is imported on first use. */
export async function codecFor(encoding: EncodingName): Promise<Codec> {
  if (encoding === "json") return jsonCodec;
  const msgpack = await import("@msgpack/msgpack");
  return {
    subprotocol: "easel.v1.msgpack",
    // Maps with the JSON field names; undefined fields are left out, as
    // serde's skip_serializing_if does.
    encode: (msg) => msgpack.encode(msg, { ignoreUndefined: true }),
    decode: (frame) => {
      if (!(frame instanceof ArrayBuffer) && !ArrayBuffer.isView(frame)) {
        throw new Error("text frame on a MessagePack connection");
      }
      return msgpack.decode(frame) as ServerMessage;
    },
  };
}
