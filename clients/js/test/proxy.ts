// Proxies between the SDK and a gateway: one that cuts the connection
// when the next reply comes (an ack lost in flight), one that refuses
// WebSocket upgrades (a proxy that blocks them) until told otherwise.

import http from "node:http";
import net from "node:net";

/** A TCP proxy; `cutOnNextReply` drops both sides instead of forwarding the server's next bytes. */
export class CuttingProxy {
  cutOnNextReply = false;
  cuts = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private constructor(readonly port: number, server: net.Server) {
    this.server = server;
  }

  static async start(target: number): Promise<CuttingProxy> {
    const self: { proxy?: CuttingProxy } = {};
    const server = net.createServer((client) => {
      const upstream = net.connect(target, "127.0.0.1");
      self.proxy?.sockets.add(client).add(upstream);
      client.on("data", (d) => upstream.write(d));
      upstream.on("data", (d) => {
        if (self.proxy?.cutOnNextReply) {
          self.proxy.cutOnNextReply = false;
          self.proxy.cuts += 1;
          client.destroy();
          upstream.destroy();
          return;
        }
        client.write(d);
      });
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const proxy = new CuttingProxy((server.address() as net.AddressInfo).port, server);
    self.proxy = proxy;
    return proxy;
  }

  get ws(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

/** An HTTP proxy that forwards requests (SSE streams included) but refuses upgrades unless `allowUpgrades`. */
export class NoUpgradeProxy {
  allowUpgrades = false;
  refused = 0;
  /** Upgraded connections, which the HTTP server no longer tracks. */
  private readonly tunnels = new Set<net.Socket>();
  private constructor(readonly port: number, private readonly server: http.Server) {}

  static async start(target: number): Promise<NoUpgradeProxy> {
    const self: { proxy?: NoUpgradeProxy } = {};
    const server = http.createServer((req, res) => {
      const up = http.request({ host: "127.0.0.1", port: target, method: req.method, path: req.url, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on("error", () => res.destroy());
      res.on("close", () => up.destroy());
      req.pipe(up);
    });
    server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      if (!self.proxy?.allowUpgrades) {
        if (self.proxy) self.proxy.refused += 1;
        socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
      }
      const up = net.connect(target, "127.0.0.1", () => {
        self.proxy?.tunnels.add(up).add(socket);
        const lines = [`${req.method ?? "GET"} ${req.url ?? "/"} HTTP/1.1`];
        for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i] ?? ""}: ${req.rawHeaders[i + 1] ?? ""}`);
        up.write(lines.join("\r\n") + "\r\n\r\n");
        up.write(head);
        up.pipe(socket);
        socket.pipe(up);
      });
      up.on("error", () => socket.destroy());
      socket.on("error", () => up.destroy());
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const proxy = new NoUpgradeProxy((server.address() as net.AddressInfo).port, server);
    self.proxy = proxy;
    return proxy;
  }

  get ws(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  async stop(): Promise<void> {
    for (const s of this.tunnels) s.destroy();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}
