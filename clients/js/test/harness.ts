// Real servers for the integration tests: a private Redis and gateway
// processes on free loopback ports, killable at will; tokens; polling.

import { type ChildProcess, spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const SECRET = "sdk-integration-secret-0123456789abcdef";
const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
const GATEWAY = process.env.EASEL_GATEWAY_BIN ?? join(ROOT, "target/debug/gateway");

/** An HS256 token for `sub`. */
export function token(sub: string, ttlSecs = 600, claims: Record<string, unknown> = {}): string {
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, name: `${sub} name`, exp: Math.floor(Date.now() / 1000) + ttlSecs, ...claims })}`;
  return `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `cond` until it holds; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

function exited(proc: ChildProcess): Promise<void> {
  return proc.exitCode !== null || proc.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => proc.once("exit", () => r()));
}

export class Redis {
  private proc: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), "easel-sdk-redis-"));
  private constructor(readonly port: number) {}

  static async start(): Promise<Redis> {
    const r = new Redis(await freePort());
    await r.restart();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts (again, empty: no persistence) on the same port. */
  async restart(): Promise<void> {
    this.proc = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", this.dir], { stdio: "ignore" });
    await waitFor("redis to listen", () => reachable(this.port));
  }

  async kill(): Promise<void> {
    if (!this.proc) return;
    this.proc.kill("SIGKILL");
    await exited(this.proc);
    this.proc = undefined;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class Gateway {
  private constructor(
    readonly port: number,
    readonly admin: number,
    private readonly proc: ChildProcess,
  ) {}

  static async start(node: string, redis: Redis | undefined, env: Record<string, string> = {}): Promise<Gateway> {
    const [port, admin] = [await freePort(), await freePort()];
    const proc = spawn(GATEWAY, [], {
      stdio: ["ignore", "ignore", process.env.EASEL_SDK_TEST_LOGS ? "inherit" : "ignore"],
      env: {
        PATH: process.env.PATH ?? "",
        EASEL_NODE_ID: node,
        EASEL_LISTEN: `127.0.0.1:${port}`,
        EASEL_ADMIN_LISTEN: `127.0.0.1:${admin}`,
        EASEL_JWT_SECRET: SECRET,
        EASEL_ALLOWED_ORIGINS: "*",
        EASEL_DRAIN_DELAY_MS: "0",
        EASEL_DRAIN_WINDOW_MS: "0",
        EASEL_IP_CONNECT_RATE: "off",
        ...(redis ? { EASEL_REDIS_URL: redis.url } : {}),
        ...env,
      },
    });
    const g = new Gateway(port, admin, proc);
    await waitFor(`gateway ${node} ready`, async () => {
      if (proc.exitCode !== null) throw new Error(`gateway ${node} exited with ${proc.exitCode}`);
      try {
        return (await fetch(`http://127.0.0.1:${admin}/readyz`)).ok;
      } catch {
        return false;
      }
    });
    return g;
  }

  get ws(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }
  get http(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** kill -9: no drain, no close frames. */
  async kill(): Promise<void> {
    this.proc.kill("SIGKILL");
    await exited(this.proc);
  }

  async stop(): Promise<void> {
    this.proc.kill("SIGTERM");
    await exited(this.proc);
  }
}
