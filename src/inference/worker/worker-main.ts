import { parentPort, workerData } from "node:worker_threads";
import type { LoadedEngine } from "../../engine/backend.js";
import { Prng } from "../../engine/sampling/index.js";
import type { EngineOptions } from "../../engine/types.js";
import { TesseraError } from "../../errors.js";
import { toWire } from "../errors.js";
import { Generator } from "../generator.js";
import { BatchScheduler } from "../batch-scheduler.js";
import type { PromptInfo, TokenEvent } from "../result.js";
import { promptTokens } from "../prompt.js";
import type { BenchRequest, BenchResult, EngineBackend, EngineInfo, FromWorker, ToWorker, WorkerInit } from "./protocol.js";

// The engine's thread: owns the Stepper (ORT session) and runs the generation loop, so the
// synchronous ORT calls never block the main event loop. Requests run one at a time, in order,
// unless the engine batches (LoadedEngine.batch): then the batch scheduler runs them together.

const port = parentPort!;
const init = workerData as WorkerInit;
const send = (m: FromWorker) => port.postMessage(m);

async function open(backend: EngineBackend, modelPath: string, engine: EngineOptions): Promise<LoadedEngine> {
  switch (backend.kind) {
    case "model":
      return (await import("../../engine/backend.js")).openEngine(modelPath, engine);
    case "sharded":
      return (await import("../../runner/sharded-backend.js")).openShardedEngine(modelPath, engine, backend.sharding);
    case "cluster":
      return (await import("../../runner/cluster-backend.js")).openClusterEngine(modelPath, engine, backend.remote, backend.control);
    case "module": {
      const mod = (await import(backend.url)) as { openEngine?: (path: string, opts: EngineOptions) => Promise<LoadedEngine> };
      if (typeof mod.openEngine !== "function") throw new TesseraError("the module exports no openEngine function", backend.url);
      return mod.openEngine(modelPath, engine);
    }
  }
}

async function load(): Promise<LoadedEngine | undefined> {
  try {
    return await open(init.backend, init.modelPath, { ...init.engine, onProgress: (progress) => send({ type: "progress", progress }) });
  } catch (e) {
    send({ type: "init-error", error: toWire(e) });
    port.close();
    return undefined;
  }
}

const loaded = await load();
if (loaded) serve(loaded);

function serve(engine: LoadedEngine): void {
  // One throwaway step, as llama.cpp does at load: ORT allocates and pre-packs on its first run,
  // which would otherwise land on (and skew the timings of) the first request.
  engine.stepper.forward(Int32Array.of(0));
  engine.stepper.truncate(0);
  const batch = engine.batch;
  if (batch) {
    // and one decode step of every slot: the widest batch's buffers
    batch.decode(Array.from({ length: batch.slots }, (_, slot) => ({ slot, token: 0 })));
    for (let s = 0; s < batch.slots; s++) batch.truncate(s, 0);
  }
  const scheduler = batch ? new BatchScheduler(batch, engine.tokenizer, { prefillChunk: init.prefillChunk }) : undefined;
  const generator = new Generator(engine.stepper, engine.tokenizer, { prefillChunk: init.prefillChunk });

  const info: EngineInfo = {
    modelPath: init.modelPath,
    architecture: engine.architecture,
    vocabSize: engine.stepper.vocabSize,
    contextLength: engine.stepper.contextLength,
    stopIds: engine.tokenizer?.stopIds ?? [],
    hasTokenizer: engine.tokenizer !== undefined,
    chatTemplate: engine.tokenizer?.chatTemplate?.source,
    weightBytes: engine.weightBytes,
    parameterCount: engine.parameterCount,
    format: engine.format,
    slots: batch?.slots ?? 1,
  };
  send({ type: "ready", info });

  const cancels = new Map<number, AbortController>();
  let queue: Promise<unknown> = Promise.resolve();

  function serial<T>(job: () => Promise<T> | T): Promise<T> {
    const run = queue.then(job);
    queue = run.catch(() => undefined);
    return run;
  }

  function needTokenizer() {
    if (!engine.tokenizer) throw new TesseraError("this model has no tokenizer", init.modelPath);
    return engine.tokenizer;
  }

  async function bench(req: BenchRequest): Promise<BenchResult> {
    const stepper = engine.stepper;
    const rng = new Prng(req.seed ?? 1);
    const vocab = stepper.vocabSize;
    generator.reset();
    let ppMs = 0;
    if (req.pp > 0) {
      const prompt = Int32Array.from({ length: req.pp }, () => rng.nextU32() % vocab);
      const chunk = init.prefillChunk ?? 512;
      const t = performance.now();
      for (let at = 0; at < prompt.length; at += chunk) stepper.forward(prompt.subarray(at, at + chunk));
      ppMs = performance.now() - t;
      stepper.truncate(0);
    }
    let tgMs = 0;
    if (req.tg > 0) {
      // As llama-bench's tg: random tokens, one per step, no sampling.
      const tokens = Int32Array.from({ length: req.tg }, () => rng.nextU32() % vocab);
      const t = performance.now();
      for (let i = 0; i < req.tg; i++) stepper.forward(tokens.subarray(i, i + 1));
      tgMs = performance.now() - t;
      stepper.truncate(0);
    }
    return { ppMs, tgMs };
  }

  async function handle(msg: ToWorker): Promise<void> {
    if (msg.type === "close") {
      await queue;
      await scheduler?.idle();
      await engine.stepper.dispose();
      await engine.close();
      send({ type: "closed" });
      port.close();
      return;
    }
    if (msg.type === "cancel") {
      cancels.get(msg.id)?.abort();
      return;
    }
    const { id } = msg;
    try {
      let value: (FromWorker & { type: "result" })["value"];
      switch (msg.type) {
        case "generate": {
          const ac = new AbortController();
          cancels.set(id, ac);
          try {
            const opts = {
              signal: ac.signal,
              onPrompt: (info: PromptInfo) => send({ type: "prompt", id, info }),
              onToken: (event: TokenEvent) => send({ type: "token", id, event }),
            };
            value = await (scheduler ? scheduler.generate(msg.request, opts) : serial(() => generator.generate(msg.request, opts)));
          } finally {
            cancels.delete(id);
          }
          break;
        }
        case "bench":
          value = await serial(async () => {
            // the bench drives slot 0 directly: once no request runs; the slots' cached prefixes are forgotten after
            await scheduler?.idle();
            const r = await bench(msg.bench);
            scheduler?.resetCache();
            return r;
          });
          break;
        case "count":
          value = promptTokens(msg.input, engine.tokenizer).length;
          break;
        case "encode":
          value = needTokenizer().encode(msg.text, { addSpecial: msg.addSpecial });
          break;
        case "decode":
          value = needTokenizer().decode(msg.tokens, { skipSpecial: msg.skipSpecial });
          break;
        case "chat":
          value = needTokenizer().applyChatTemplate(msg.messages, { addGenerationPrompt: msg.addGenerationPrompt ?? true });
          break;
      }
      send({ type: "result", id, value });
    } catch (e) {
      send({ type: "error", id, error: toWire(e) });
    }
  }

  port.on("message", (msg: ToWorker) => void handle(msg));
}
