/**
 * Batched decode on a pipeline, sampled on the driver or on the last stage: ms per DECODE step of N
 * sequences when every row's logits cross the link to the driver, and when the last stage samples
 * and only the tokens cross it, in one run, over loopback and over emulated links.
 *
 *   node dist/bench/serving/sampled-decode.js [--models DIR] [--rows 8] [--steps 32] [--repeat 3]
 *        [--links loopback,1000] [--latency-us 100] [--out bench/results]
 *
 * Model: the synthetic 1b llama, Q4_0, 32k vocabulary (bench/serving/stream-stats.ts). PP 2, one
 * thread per runner; each runner is a machine and the driver shares the first one's (bench/scaling's
 * emulation), so an emulated link (MBit/s, `--links`) carries hidden states from stage 0 to stage 1
 * and, logits or tokens, from stage 1 back to the driver. Both ways run the same steps alternately, in
 * one process: greedy, `rows` sequences of a 32-token prompt each, `steps` steps per round; one step
 * of all rows at a time, and two steps of half the rows in flight (the batch scheduler's pipelined
 * decode).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ShardedDriver } from "../../src/runner/driver.js";
import { makePlan } from "../../src/placement/shard-plan.js";
import { openModel } from "../../src/models/open.js";
import { argmax } from "../../src/engine/sampling/select.js";
import type { ResolvedSamplingParams } from "../../src/engine/sampling/index.js";
import { provenance } from "../provenance.js";
import { median, round2 } from "../stats.js";
import { ProxyHost, emulatedLinks } from "../scaling/proxies.js";
import { benchModel, prompts } from "./stream-stats.js";

const { values } = parseArgs({
  options: {
    models: { type: "string", default: join(tmpdir(), "tessera-bench-models") },
    rows: { type: "string", default: "8" },
    steps: { type: "string", default: "32" },
    repeat: { type: "string", default: "3" },
    links: { type: "string", default: "loopback,1000" },
    "latency-us": { type: "string", default: "100" },
    out: { type: "string", default: join("bench", "results") },
  },
});
const rows = Number(values.rows);
const steps = Number(values.steps);
const repeat = Number(values.repeat);
const latencyUs = Number(values["latency-us"]);
const links = values.links!.split(",");
const PROMPT = 32;

const model = await benchModel(values.models!);
const source = await openModel(model);
const config = source.config;
await source.close();
const GREEDY: ResolvedSamplingParams = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, penaltyLastN: 64, seed: 1 };

/**
 * ms per step of `steps` decode steps of every slot, from each slot's prompt; the tokens drawn, per
 * slot. Pipelined: the slots in two halves, each its own step, the two kept in flight (as the batch
 * scheduler runs a 2-stage pipeline).
 */
async function decodeRun(d: ShardedDriver, ps: number[][], sampled: boolean, pipelined: boolean): Promise<{ msPerStep: number; tokens: number[][] }> {
  const next: number[] = [];
  for (const [slot, p] of ps.entries()) {
    d.truncate(0, slot);
    if (sampled) {
      await d.beginSampling(GREEDY, {}, p, slot);
      next.push((await d.forwardSample(Int32Array.from(p), slot)).token);
    } else {
      next.push(argmax(await d.forward(Int32Array.from(p), { slot })));
    }
  }
  const tokens = ps.map((_, s) => [next[s]!]);
  const all = ps.map((_, s) => s);
  const groups = pipelined ? [all.slice(0, rows / 2), all.slice(rows / 2)] : [all];
  const V = d.vocabSize;
  const inFlight: { group: number[]; drawn: Promise<number[]> }[] = [];
  const start = async (group: number[]) => {
    const entries = group.map((slot) => ({ slot, token: next[slot]! }));
    const drawn = sampled
      ? (await d.startDecodeSampled(entries)).samples.then((rs) => rs.map((r) => r.token))
      : (await d.startDecode(entries)).logits.then((l) => group.map((_, r) => argmax(l.subarray(r * V, (r + 1) * V))));
    inFlight.push({ group, drawn });
  };
  const t0 = performance.now();
  for (const g of groups) await start(g);
  for (let done = 0; done < steps * groups.length; done++) {
    const { group, drawn } = inFlight.shift()!;
    const got = await drawn;
    group.forEach((slot, r) => {
      next[slot] = got[r]!;
      tokens[slot]!.push(got[r]!);
    });
    if (done + groups.length < steps * groups.length) await start(group);
  }
  return { msPerStep: (performance.now() - t0) / steps, tokens };
}

const results = [];
for (const link of links) {
  const proxies = link === "loopback" ? undefined : ProxyHost.start();
  const routeLink = proxies ? emulatedLinks(proxies, latencyUs, (Number(link) * 1e6) / 8) : undefined;
  console.error(`${link}: loading ...`);
  const d = await ShardedDriver.start({ plan: makePlan(config, { pp: 2, tp: 1 }), modelPath: model, contextLength: PROMPT + steps + 8, threads: 1, slots: rows, routeLink });
  try {
    for (const pipelined of [false, true]) {
      const ms: Record<"driver" | "lastStage", number[]> = { driver: [], lastStage: [] };
      for (let r = 0; r < repeat + 1; r++) {
        const ps = prompts(rows, PROMPT, d.vocabSize).map((p) => p.map((t) => 300 + ((t + r * 31) % (d.vocabSize - 300))));
        // alternate which way goes first; round 0 warms up
        const order = r % 2 === 0 ? [false, true] : [true, false];
        const runs = [];
        for (const sampled of order) runs.push({ sampled, ...(await decodeRun(d, ps, sampled, pipelined)) });
        const [a, b] = runs;
        if (JSON.stringify(a!.tokens) !== JSON.stringify(b!.tokens)) throw new Error("the two ways drew different greedy tokens");
        if (r > 0) for (const run of runs) ms[run.sampled ? "lastStage" : "driver"].push(run.msPerStep);
      }
      const driver = round2(median(ms.driver));
      const lastStage = round2(median(ms.lastStage));
      results.push({
        link: link === "loopback" ? "loopback" : `${link} Mbit/s, ${latencyUs} µs one way`,
        rows,
        decode: pipelined ? "two steps of half the rows in flight" : "one step of all rows at a time",
        bytesToDriverPerStep: { driver: rows * d.vocabSize * 4, lastStage: rows * 3 * 8 },
        msPerStep: { driver, lastStage },
        msPerStepRounds: { driver: ms.driver.map(round2), lastStage: ms.lastStage.map(round2) },
        decodeTps: { driver: round2((rows * 1000) / driver), lastStage: round2((rows * 1000) / lastStage) },
        speedup: round2(driver / lastStage),
      });
      console.error(JSON.stringify(results.at(-1)));
    }
  } finally {
    await d.close();
    proxies?.close();
  }
}

const report = {
  ...provenance("sampled-decode", ["src", "bench/serving", "bench/scaling"]),
  model: "synthetic 1b llama Q4_0 (tessera synth --arch llama --preset 1b --quant q4_0 --vocab spm --seed 1)",
  vocab: config.vocabSize,
  plan: "PP 2, 1 thread per runner",
  promptTokens: PROMPT,
  steps,
  repeat,
  results,
};
mkdirSync(values.out!, { recursive: true });
const file = join(values.out!, `sampled-decode-${report.date.slice(0, 10)}.json`);
writeFileSync(file, JSON.stringify(report, null, 2) + "\n");
console.error(`wrote ${file}`);
