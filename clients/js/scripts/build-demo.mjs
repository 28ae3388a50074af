// Builds the demo (clients/demo) into clients/demo/dist: the app bundled
// with the SDK (MessagePack split into its own chunk), the page and styles.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const demo = fileURLToPath(new URL("../../demo/", import.meta.url));
const dist = `${demo}dist`;
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
await build({
  entryPoints: { app: `${demo}src/main.ts` },
  bundle: true,
  splitting: true,
  format: "esm",
  minify: true,
  sourcemap: true,
  target: "es2022",
  outdir: dist,
  logLevel: "warning",
});
for (const f of ["index.html", "style.css"]) copyFileSync(`${demo}${f}`, `${dist}/${f}`);
console.log(`demo built in ${dist}`);
