// The board: pixels on a <canvas>, the palette, other users' cursors and
// the tabletop layer (tokens anyone may move, fog regions gms see).

import type { Canvas, ObjectState } from "../../js/src/index.js";

/** The page's element `#id`, of the class `kind`. */
function $<T extends HTMLElement>(id: string, kind: new () => T): T {
  const el = document.getElementById(id);
  if (!(el instanceof kind)) throw new Error(`#${id} missing from the page`);
  return el;
}

/** `#rrggbb` -> [r, g, b]. */
function rgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

export class Board {
  color = 1;
  private readonly el = $("board", HTMLCanvasElement);
  private readonly ctx: CanvasRenderingContext2D;
  private readonly cursors = new Map<string, { el: HTMLElement; at: number }>();
  private dragging: { id: string; el: HTMLElement } | undefined;

  constructor(
    private readonly canvas: Canvas,
    private readonly palette: string[],
    /** This user: their own cursor (echoed back) is the pointer itself. */
    private readonly self: string,
  ) {
    const ctx = this.el.getContext("2d");
    if (!ctx) throw new Error("no 2d context");
    this.ctx = ctx;
    this.drawPalette();
    canvas.on("reset", () => {
      this.redraw();
      this.renderObjects();
    });
    canvas.on("draw", (d) => {
      for (const p of d.pixels) this.paint(p.x, p.y, p.color);
    });
    canvas.on("cleared", () => this.redraw());
    canvas.on("cursor", (c) => {
      if (c.author.id !== self) this.moveCursor(c.author.id, c.author.name ?? c.author.id, c.x, c.y);
    });
    canvas.on("user_left", (u) => this.dropCursor(u.user));
    for (const e of ["object_created", "object_updated", "object_moved", "object_deleted", "cleared"] as const) {
      canvas.on(e, () => this.renderObjects());
    }
    this.listen();
    setInterval(() => this.fadeCursors(), 1000);
  }

  /** Board coordinates of a pointer event. */
  private at(ev: PointerEvent): { x: number; y: number } {
    const r = this.el.getBoundingClientRect();
    return {
      x: Math.min(this.canvas.width - 1, Math.max(0, Math.floor(((ev.clientX - r.left) / r.width) * this.canvas.width))),
      y: Math.min(this.canvas.height - 1, Math.max(0, Math.floor(((ev.clientY - r.top) / r.height) * this.canvas.height))),
    };
  }

  private listen(): void {
    this.el.addEventListener("pointerdown", (ev) => {
      const { x, y } = this.at(ev);
      this.paint(x, y, this.color);
      this.canvas.draw([{ x, y, color: this.color }]).catch((e: unknown) => console.warn("draw", e));
    });
    const wrap = $("board-wrap", HTMLElement);
    wrap.addEventListener("pointermove", (ev) => {
      const { x, y } = this.at(ev);
      this.canvas.cursor(x, y);
      if (this.dragging) this.place(this.dragging.el, { x, y, w: 0, h: 0 }, true);
    });
    wrap.addEventListener("pointerup", (ev) => {
      const drag = this.dragging;
      this.dragging = undefined;
      if (!drag) return;
      const { x, y } = this.at(ev);
      this.canvas.moveObject(drag.id, { x, y }).catch((e: unknown) => console.warn("move", e));
    });
  }

  private drawPalette(): void {
    const box = $("palette", HTMLElement);
    box.replaceChildren();
    this.palette.forEach((hex, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.title = `colour ${i}`;
      b.style.background = hex;
      b.dataset.color = String(i);
      if (i === this.color) b.className = "chosen";
      b.onclick = () => {
        this.color = i;
        for (const other of box.querySelectorAll("button")) other.classList.toggle("chosen", other === b);
      };
      box.append(b);
    });
  }

  private paint(x: number, y: number, color: number): void {
    this.ctx.fillStyle = this.palette[color] ?? "#000";
    this.ctx.fillRect(x, y, 1, 1);
  }

  /** Everything from the local state (after a join or a reset). */
  redraw(): void {
    const { width, height } = this.canvas;
    if (this.el.width !== width || this.el.height !== height) {
      this.el.width = width;
      this.el.height = height;
    }
    const cells = this.canvas.pixels;
    if (!cells) return;
    const img = this.ctx.createImageData(width, height);
    const colors = this.palette.map(rgb);
    for (let i = 0; i < cells.length; i++) {
      const [r, g, b] = colors[cells[i] ?? 0] ?? [0, 0, 0];
      img.data.set([r, g, b, 255], i * 4);
    }
    this.ctx.putImageData(img, 0, 0);
  }

  /** Positions an element at board coordinates, in percent of the board. */
  private place(el: HTMLElement, o: { x: number; y: number; w: number; h: number }, keepSize = false): void {
    el.style.left = `${(o.x / this.canvas.width) * 100}%`;
    el.style.top = `${(o.y / this.canvas.height) * 100}%`;
    if (!keepSize) {
      el.style.width = `${(o.w / this.canvas.width) * 100}%`;
      el.style.height = `${(o.h / this.canvas.height) * 100}%`;
    }
  }

  renderObjects(): void {
    const layer = $("objects", HTMLElement);
    layer.replaceChildren();
    for (const o of this.canvas.objects.values()) layer.append(this.objectEl(o));
  }

  private objectEl(o: ObjectState): HTMLElement {
    const el = document.createElement("div");
    el.dataset.id = o.id;
    this.place(el, o);
    if (o.kind === "fog") {
      el.className = "fog";
      el.title = "fog: only gms see this region";
      return el;
    }
    el.className = "token";
    el.style.background = typeof o.props.color === "string" ? o.props.color : "#36c";
    el.textContent = typeof o.props.label === "string" ? o.props.label : "";
    el.addEventListener("pointerdown", (ev) => {
      ev.stopPropagation();
      this.dragging = { id: o.id, el };
    });
    return el;
  }

  private moveCursor(id: string, name: string, x: number, y: number): void {
    let c = this.cursors.get(id);
    if (!c) {
      const el = document.createElement("div");
      el.className = "cursor";
      el.dataset.user = id;
      const label = document.createElement("span");
      label.textContent = name;
      el.append(label);
      $("cursors", HTMLElement).append(el);
      c = { el, at: 0 };
      this.cursors.set(id, c);
    }
    c.at = Date.now();
    this.place(c.el, { x: x + 0.5, y: y + 0.5, w: 0, h: 0 }, true);
  }

  private dropCursor(id: string): void {
    this.cursors.get(id)?.el.remove();
    this.cursors.delete(id);
  }

  private fadeCursors(): void {
    for (const [id, c] of this.cursors) if (Date.now() - c.at > 10_000) this.dropCursor(id);
  }
}
