/**
 * Engine memory experiment: how each way of creating the onnxruntime session(s) for one model
 * changes peak RSS, steady RSS and decode speed, with a breakdown of the steady RSS. Variants are
 * described in memory-variants.ts.
 *
 *   MALLOC_MMAP_THRESHOLD_=4194304 node --expose-gc dist/bench/engine/memory-options.js MODEL \
 *     [--variants memory,disk,split:4,memory@2] [--rounds 5] [--tg 32] [--ctx 336] [--out FILE]
 *
 * Each variant loads in its own child process (peak RSS is per process), one after another so
 * loads do not overlap; then the parent alternates decode rounds between the loaded children
 * (A, B, C, A, B, C, ...) so every variant sees the same machine noise. Medians over rounds.
 * `checksum` (sum of the last logits of round 1) shows whether a variant changed the arithmetic.
 */
import { fork, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { provenance } from "../provenance.js";
import { loadVariant, memorySnapshot, type LoadReport } from "./memory-variants.js";
import { median } from "../stats.js";

interface RoundReply {
  tgTps: number;
  checksum: number;
  minorFaultsPerToken: number;
}

const self = fileURLToPath(import.meta.url);

if (process.env.MEMORY_OPTIONS_CHILD) {
  await child(process.env.MEMORY_OPTIONS_CHILD);
} else {
  await parent();
}

async function child(spec: string): Promise<void> {
  const { model, variant, ctx } = JSON.parse(spec) as { model: string; variant: string; ctx: number };
  const before = memorySnapshot();
  const loaded = await loadVariant(model, variant, ctx);
  const report: LoadReport = { ...loaded.report, before };
  process.send!({ loaded: report });
  process.on("message", (m: { round?: number; exit?: boolean }) => {
    if (m.exit || m.round === undefined) {
      loaded.dispose();
      process.exit(0);
    }
    const faults0 = process.resourceUsage().minorPageFault;
    const t = performance.now();
    let last: Float32Array = new Float32Array(0);
    for (let i = 0; i < m.round; i++) last = loaded.decode(300 + i);
    const ms = performance.now() - t;
    const reply: RoundReply = {
      tgTps: m.round / (ms / 1000),
      checksum: last.reduce((a, b) => a + b, 0),
      minorFaultsPerToken: (process.resourceUsage().minorPageFault - faults0) / m.round,
    };
    loaded.rewind();
    process.send!(reply);
  });
}


function reply<T>(c: ChildProcess, msg?: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`child exited with ${code}`));
    c.once("exit", onExit);
    c.once("message", (m) => {
      c.off("exit", onExit);
      resolve(m as T);
    });
    if (msg) c.send(msg);
  });
}

async function parent(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      variants: { type: "string", default: "memory,disk,split:4" },
      rounds: { type: "string", default: "5" },
      tg: { type: "string", default: "32" },
      ctx: { type: "string", default: "336" },
      out: { type: "string" },
    },
  });
  const model = positionals[0];
  if (!model) {
    console.error("usage: memory-options MODEL [--variants a,b] [--rounds R] [--tg N] [--ctx C] [--out FILE]");
    process.exit(2);
  }
  const variants = values.variants!.split(",");
  const ctx = Number(values.ctx);
  const tg = Number(values.tg);
  const children: { variant: string; proc: ChildProcess; load: LoadReport; rounds: RoundReply[] }[] = [];
  for (const variant of variants) {
    const proc = fork(self, [], {
      env: { ...process.env, MEMORY_OPTIONS_CHILD: JSON.stringify({ model, variant, ctx }) },
      execArgv: ["--expose-gc"],
    });
    const { loaded } = await reply<{ loaded: LoadReport }>(proc);
    console.error(`${variant}: loaded, peak ${loaded.peakMiB} MiB, steady ${loaded.steady.rssMiB} MiB`);
    children.push({ variant, proc, load: loaded, rounds: [] });
  }
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const c of children) c.rounds.push(await reply<RoundReply>(c.proc, { round: tg }));
  }
  for (const c of children) c.proc.send({ exit: true });
  const rows = children.map((c) => ({
    ...c.load,
    tgTps: Number(median(c.rounds.map((x) => x.tgTps)).toFixed(2)),
    tgTpsRounds: c.rounds.map((x) => Number(x.tgTps.toFixed(2))),
    minorFaultsPerToken: median(c.rounds.map((x) => x.minorFaultsPerToken)),
    checksum: c.rounds[0].checksum,
  }));
  const result = { ...provenance("engine-memory", ["src/engine", "bench/engine"]), model: basename(model), ctx, tg, rows };
  const text = JSON.stringify(result, null, 2);
  if (values.out) writeFileSync(values.out, text + "\n");
  console.log(text);
}
