/**
 * Engine memory experiment: peak and steady RSS and 1-thread decode speed of one onnxruntime
 * session option set, on one model, in a fresh process (peak RSS is per process).
 *
 *   MALLOC_MMAP_THRESHOLD_=4194304 node --expose-gc dist/bench/engine/memory-options.js MODEL OPTION
 *
 * OPTION: default | noprepack | noarena | devalloc. Prints one JSON line; `checksum` (sum of the
 * last logits) tells whether an option changed the arithmetic. Run options one after another on
 * the same model and compare within that run (the machine is noisy).
 */
import { openModel } from "../../src/models/open.js";
import { ShardEngine, type ShardOptions } from "../../src/engine/session/shard.js";

const OPTIONS: Record<string, ShardOptions["session"]> = {
  default: {},
  noprepack: { sessionConfig: { "session.disable_prepacking": "1" } },
  noarena: { cpuMemArena: false },
  devalloc: { sessionConfig: { "session.use_device_allocator_for_initializers": "1" } },
};

const [model, option = "default"] = process.argv.slice(2);
if (!model || !(option in OPTIONS)) {
  console.error(`usage: memory-options MODEL [${Object.keys(OPTIONS).join("|")}]`);
  process.exit(2);
}
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const tg = Number(process.env.TG ?? 48);
const src = await openModel(model);
const t0 = performance.now();
const shard = await ShardEngine.create(src, { threads: 1, contextLength: 16 + tg + 16, session: OPTIONS[option] });
const loadMs = performance.now() - t0;
gc();
shard.run(shard.embed(Int32Array.from({ length: 16 }, (_, i) => 300 + i * 97)), 16);
gc();
const steadyBytes = process.memoryUsage().rss;
let last: Float32Array = new Float32Array(0);
const t = performance.now();
for (let i = 0; i < tg; i++) last = shard.run(shard.embed(Int32Array.of(300 + i)), 1);
const tgTps = tg / ((performance.now() - t) / 1000);
const MB = 1048576;
console.log(
  JSON.stringify({
    option,
    loadMs: Math.round(loadMs),
    peakMB: Math.round((process.resourceUsage().maxRSS * 1024) / MB),
    steadyMB: Math.round(steadyBytes / MB),
    tgTps: Number(tgTps.toFixed(2)),
    checksum: last.reduce((a, b) => a + b, 0),
  }),
);
shard.dispose();
await src.close();
