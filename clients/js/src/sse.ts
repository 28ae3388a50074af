// Server-Sent Events over `fetch` (browsers and Node 20+ alike, with the
// token in the Authorization header rather than the URL).

/** One event of a stream. */
export interface SseMessage {
  /** `event:`, or "message" when the event is unnamed. */
  event: string;
  data: string;
  id: string | undefined;
}

/** Parses an SSE byte stream into messages, calling `onMessage` for each. */
export async function readSse(
  body: ReadableStream<Uint8Array>,
  onMessage: (msg: SseMessage) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "message";
  let data: string[] = [];
  let id: string | undefined;
  const line = (text: string): void => {
    if (text === "") {
      if (data.length > 0) onMessage({ event, data: data.join("\n"), id });
      event = "message";
      data = [];
      id = undefined;
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buffer.search(/\r\n|\n|\r/)) >= 0) {
      // A \r ending the chunk may be the first half of \r\n: wait for more.
      if (nl === buffer.length - 1 && buffer.endsWith("\r")) break;
      const sep = buffer.startsWith("\r\n", nl) ? 2 : 1;
      line(buffer.slice(0, nl));
      buffer = buffer.slice(nl + sep);
    }
  }
}
