// Canvas snapshots: the packed pixel format of
// `GET /api/canvases/{id}/snapshot` and the headers that describe it.

/** A canvas's pixels (one palette index per cell, row-major) and the `seq` they include. */
export interface Snapshot {
  width: number;
  height: number;
  paletteSize: number;
  seq: number;
  epoch: string;
  cells: Uint8Array;
}

/**
 * Unpacks `bits`-wide cells, most significant bit first (the Redis
 * `BITFIELD` layout the gateway sends), into one byte per cell.
 */
export function unpackCells(packed: Uint8Array, bits: number, count: number): Uint8Array {
  if (bits === 8) return packed.slice(0, count);
  if (bits < 1 || bits > 8) throw new RangeError(`unsupported cell width ${bits}`);
  const cells = new Uint8Array(count);
  const mask = (1 << bits) - 1;
  let bit = 0;
  for (let i = 0; i < count; i++, bit += bits) {
    const byte = bit >> 3;
    const shift = bit & 7;
    // Two bytes cover any cell of up to 8 bits at any offset.
    const word = ((packed[byte] ?? 0) << 8) | (packed[byte + 1] ?? 0);
    cells[i] = (word >> (16 - shift - bits)) & mask;
  }
  return cells;
}

/** Reads a snapshot response (`format=packed`). */
export async function readSnapshot(resp: Response): Promise<Snapshot> {
  const num = (name: string): number => {
    const v = Number(resp.headers.get(name));
    if (!Number.isFinite(v)) throw new Error(`snapshot without a valid ${name} header`);
    return v;
  };
  const width = num("x-easel-width");
  const height = num("x-easel-height");
  const bits = num("x-easel-bits");
  const body = new Uint8Array(await resp.arrayBuffer());
  return {
    width,
    height,
    paletteSize: num("x-easel-palette-size"),
    seq: num("x-easel-seq"),
    epoch: resp.headers.get("x-easel-epoch") ?? "",
    cells: unpackCells(body, bits, width * height),
  };
}
