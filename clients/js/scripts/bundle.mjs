// The SDK's size as an application ships it: bundled, minified and
// gzipped, without MessagePack (a separate chunk loaded only when the
// msgpack encoding is chosen) and with it. Figures in docs/BENCHMARKS.md.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";

async function size(entry, external) {
  const out = await build({
    stdin: { contents: entry, resolveDir: new URL("..", import.meta.url).pathname, loader: "ts" },
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2022",
    write: false,
    external,
    logLevel: "warning",
  });
  const bytes = out.outputFiles[0].contents;
  return { min: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
}

const sdk = 'export * from "./src/index.ts";';
const without = await size(sdk, ["@msgpack/msgpack"]);
const msgpack = await size('export * from "@msgpack/msgpack";', []);
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`@easel/client without MessagePack: ${kb(without.min)} minified, ${kb(without.gzip)} gzipped`);
console.log(`the MessagePack chunk (loaded only for encoding "msgpack"): ${kb(msgpack.min)} minified, ${kb(msgpack.gzip)} gzipped`);
