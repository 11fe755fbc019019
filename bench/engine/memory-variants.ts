/**
 * The ways of loading a model that bench/engine/memory-options.ts compares, all through
 * ShardEngine, plus the memory probes it reports.
 *
 * Variant syntax: BASE[@THREADS][/nospin], BASE one of
 *   memory        one session, converted weights handed to onnxruntime in memory
 *   disk          one session, converted weights streamed to a staging file layer by layer
 *   split:K       K pipeline shards of consecutive layers in this process (K sessions, created
 *                 one after another, each one's weights in memory), hidden states passed along
 *   noprepack | noarena | devalloc   memory, with one onnxruntime session option changed
 */
import { readFileSync } from "node:fs";
import { openModel } from "../../src/models/open.js";
import { ShardEngine, type ShardOptions } from "../../src/engine/session/shard.js";

const MiB = 1048576;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

export interface MemorySnapshot {
  rssMiB: number;
  /** /proc/self/smaps_rollup: anonymous and file-backed resident memory. */
  anonMiB: number;
  fileMiB: number;
  /** V8: JS heap in use, and ArrayBuffer backing stores (the embedding table and KV that JS holds). */
  heapUsedMiB: number;
  arrayBuffersMiB: number;
}

export interface LoadReport {
  variant: string;
  sessions: number;
  loadMs: number;
  /** getrusage maxRSS over the whole process life up to the steady point. */
  peakMiB: number;
  before?: MemorySnapshot;
  /** After load, GC and a 16-token prefill. */
  steady: MemorySnapshot;
  steadyAnonByMapping: Record<string, { count: number; rssMiB: number }>;
  kvMiB: number;
  /** RSS after each shard was created. */
  progress: { at: string; rssMiB: number }[];
}

export interface LoadedVariant {
  report: LoadReport;
  /** One decode step at the next position; returns the logits. */
  decode(token: number): Float32Array;
  /** Back to the position right after the prefill. */
  rewind(): void;
  dispose(): void;
}

const round = (bytes: number): number => Math.round(bytes / MiB);

/** V8 frees ArrayBuffer memory on a background thread after a GC: give it a moment. */
async function settle(): Promise<void> {
  gc();
  await new Promise((r) => setTimeout(r, 200));
  gc();
}

export function memorySnapshot(): MemorySnapshot {
  const rollup = readFileSync("/proc/self/smaps_rollup", "utf8");
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(rollup)?.[1] ?? 0) * 1024;
  const mem = process.memoryUsage();
  return {
    rssMiB: round(kb("Rss")),
    anonMiB: round(kb("Anonymous")),
    fileMiB: round(kb("Pss_File")),
    heapUsedMiB: round(mem.heapUsed),
    arrayBuffersMiB: round(mem.arrayBuffers),
  };
}

/**
 * Anonymous resident memory by where it lives: the glibc main heap ([heap], where blocks under
 * the mmap threshold go), and other anonymous mappings by size (blocks at or over the threshold
 * are mappings of their own, though the kernel merges neighbours; V8 pages and stacks are small).
 */
export function anonByMapping(): Record<string, { count: number; rssMiB: number }> {
  const out: Record<string, { count: number; rssMiB: number }> = {};
  let kind = "";
  for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      const size = (parseInt(head[2], 16) - parseInt(head[1], 16)) / MiB;
      const name = head[4];
      const anonymous = head[3] === "0" && (name === "" || name === "[heap]");
      kind = !anonymous ? "" : name === "[heap]" ? "heap" : size < 4 ? "anon<4MiB" : size < 64 ? "anon4-64MiB" : "anon>=64MiB";
      if (kind) (out[kind] ??= { count: 0, rssMiB: 0 }).count++;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && kind) out[kind].rssMiB += Number(rss[1]) / 1024;
  }
  for (const v of Object.values(out)) v.rssMiB = Math.round(v.rssMiB);
  return out;
}

const BASES: Record<string, Pick<ShardOptions, "session" | "staging">> = {
  memory: { staging: { mode: "memory" } },
  disk: { staging: { mode: "disk" } },
  noprepack: { staging: { mode: "memory" }, session: { sessionConfig: { "session.disable_prepacking": "1" } } },
  noarena: { staging: { mode: "memory" }, session: { cpuMemArena: false } },
  devalloc: { staging: { mode: "memory" }, session: { sessionConfig: { "session.use_device_allocator_for_initializers": "1" } } },
};

function parseVariant(variant: string): { shards: number; opts: ShardOptions } {
  const m = /^([^@/]+)(?:@(\d+))?(\/nospin)?$/.exec(variant);
  if (!m) throw new Error(`unknown variant ${variant}`);
  const [, base, threads = "1", nospin] = m;
  const common: ShardOptions = { threads: Number(threads), ...(nospin ? { spinning: false } : {}) };
  const split = /^split:(\d+)$/.exec(base);
  if (split) return { shards: Number(split[1]), opts: { ...common, staging: { mode: "memory" } } };
  if (!BASES[base]) throw new Error(`unknown variant ${variant}`);
  return { shards: 1, opts: { ...common, ...BASES[base] } };
}

export async function loadVariant(modelPath: string, variant: string, ctx: number): Promise<LoadedVariant> {
  const { shards: count, opts } = parseVariant(variant);
  const t0 = performance.now();
  const src = await openModel(modelPath);
  const L = src.config.numLayers;
  const shards: ShardEngine[] = [];
  const progress: { at: string; rssMiB: number }[] = [];
  for (let c = 0; c < count; c++) {
    const layers: [number, number] = [Math.round((c * L) / count), Math.round(((c + 1) * L) / count)];
    shards.push(await ShardEngine.create(src, { ...opts, layers, contextLength: ctx }));
    await settle();
    progress.push({ at: `created ${layers[0]}-${layers[1]}`, rssMiB: memorySnapshot().rssMiB });
  }
  await src.close();
  const loadMs = performance.now() - t0;
  const forward = (tokens: number[]): Float32Array => {
    let x = shards[0].embed(Int32Array.from(tokens));
    for (const s of shards) x = s.run(x, tokens.length);
    return x;
  };
  const PREFILL = 16;
  forward(Array.from({ length: PREFILL }, (_, i) => 300 + i * 97));
  await settle();
  const report: LoadReport = {
    variant,
    sessions: shards.length,
    loadMs: Math.round(loadMs),
    peakMiB: round(process.resourceUsage().maxRSS * 1024),
    steady: memorySnapshot(),
    steadyAnonByMapping: anonByMapping(),
    kvMiB: round(shards.reduce((a, s) => a + s.kv.bytes, 0)),
    progress,
  };
  return {
    report,
    decode: (token) => forward([token]),
    rewind: () => {
      for (const s of shards) s.kv.truncate(PREFILL);
    },
    dispose: () => {
      for (const s of shards) s.dispose();
    },
  };
}
