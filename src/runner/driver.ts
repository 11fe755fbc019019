import { TesseraError } from "../errors.js";
import { evenSplit } from "../engine/tp/split.js";
import { HEADER_INTS, Op, Tag } from "./protocol.js";
import { LocalRunners, type LaunchOptions } from "./launcher.js";

/**
 * The driver of a sharded model (world rank 0): tokens go to stage 0, logits come back from tensor
 * rank 0 of the last stage. Its forward is asynchronous (the network answers on this thread's event
 * loop); ShardedStepper (bridge.ts) turns it into the synchronous Stepper the generation loop uses.
 */
export class ShardedDriver {
  private pos = 0;
  private readonly header = new Int32Array(HEADER_INTS);
  private readonly firstStage: number[];
  /** The last stage's ranks and the vocabulary slice each sends. */
  private readonly lastStage: { world: number; rows: [number, number] }[];
  private closing: Promise<void> | undefined;

  private constructor(
    readonly runners: LocalRunners,
    readonly contextLength: number,
  ) {
    this.firstStage = runners.places.filter((p) => p.stage === 0).map((p) => p.world);
    const last = runners.places.filter((p) => p.stage === runners.places[runners.places.length - 1]!.stage);
    const counts = evenSplit(runners.vocabSize, last.length);
    let at = 0;
    this.lastStage = last.map((p, i) => {
      const rows: [number, number] = [at, at + counts[i]!];
      at = rows[1];
      return { world: p.world, rows };
    });
  }

  /** Starts the runners, waits until all are connected, and warms them up with one step. */
  static async start(o: LaunchOptions): Promise<ShardedDriver> {
    const runners = await LocalRunners.start(o);
    const d = new ShardedDriver(runners, o.contextLength);
    try {
      await d.forward(Int32Array.of(0));
      d.truncate(0);
    } catch (e) {
      runners.kill();
      await runners.close(0);
      throw e;
    }
    return d;
  }

  get vocabSize(): number {
    return this.runners.vocabSize;
  }

  get position(): number {
    return this.pos;
  }

  async forward(tokens: Int32Array, opts: { allLogits?: boolean } = {}): Promise<Float32Array> {
    const n = tokens.length;
    if (n < 1) throw new TesseraError("a forward step needs at least one token");
    if (this.pos + n > this.contextLength) {
      throw new TesseraError(
        `context overflow: ${this.pos} cached + ${n} new tokens exceed the context length of ${this.contextLength} tokens (raise --ctx)`,
      );
    }
    const world = this.runners.world;
    const h = this.header;
    h[0] = Op.STEP;
    h[1] = n;
    h[2] = opts.allLogits ? 1 : 0;
    h[3] = this.pos;
    await world.broadcast(0, h);
    for (const r of this.firstStage) await world.send(r, tokens, Tag.TOKENS);
    const V = this.vocabSize;
    const rows = opts.allLogits ? n : 1;
    const logits = new Float32Array(rows * V);
    await Promise.all(
      this.lastStage.map(async ({ world: from, rows: [v0, v1] }) => {
        const w = v1 - v0;
        // One slice per rank: straight into place for one row, else rows scattered from a buffer.
        const into = rows === 1 ? logits.subarray(v0, v1) : new Float32Array(rows * w);
        const got = await world.recv(from, into, Tag.LOGITS);
        if (got !== into.byteLength) throw new Error(`got ${got} bytes of logits from world rank ${from}, expected ${into.byteLength}`);
        if (rows > 1) for (let r = 0; r < rows; r++) logits.set(into.subarray(r * w, (r + 1) * w), r * V + v0);
      }),
    );
    this.pos += n;
    return logits;
  }

  truncate(pos: number): void {
    if (!Number.isInteger(pos) || pos < 0) throw new TesseraError(`invalid truncate position ${pos}`);
    if (pos >= this.pos) return;
    this.pos = pos;
    const h = this.header;
    h[0] = Op.TRUNCATE;
    h[1] = 0;
    h[2] = 0;
    h[3] = pos;
    // The root's broadcast is queued at once; a broken group shows up at the next forward.
    this.runners.world.broadcast(0, h).catch(() => {});
  }

  /** Tells the runners to exit and waits for them (killing what is left after `ms`). */
  close(ms = 5000): Promise<void> {
    this.closing ??= (async () => {
      const h = this.header;
      h.fill(0);
      h[0] = Op.CLOSE;
      await this.runners.world.broadcast(0, h).catch(() => {});
      await this.runners.close(ms);
    })();
    return this.closing;
  }
}
