import { parentPort, workerData } from "node:worker_threads";
import { isTesseraError, TesseraError } from "../../errors.js";
import { Generator } from "../generator.js";
import { Prng } from "../../engine/sampling/index.js";
import type { LoadedEngine, OpenEngine } from "../../engine/backend.js";
import type { BenchRequest, BenchResult, EngineInfo, FromWorker, ToWorker, WireError, WorkerInit } from "./protocol.js";

// The engine's thread: owns the Stepper (ORT session) and runs the generation loop, so the
// synchronous ORT calls never block the main event loop. Requests run one at a time, in order.

const port = parentPort!;
const init = workerData as WorkerInit;
const send = (m: FromWorker) => port.postMessage(m);

function wire(e: unknown): WireError {
  if (e instanceof Error) return { message: e.message, user: isTesseraError(e), stack: e.stack };
  return { message: String(e), user: false };
}

async function load(): Promise<LoadedEngine | undefined> {
  try {
    const { openEngine } = (await import(init.backend)) as { openEngine: OpenEngine };
    return await openEngine(init.modelPath, init.engine);
  } catch (e) {
    send({ type: "init-error", error: wire(e) });
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
  const generator = new Generator(engine.stepper, engine.tokenizer, { prefillChunk: init.prefillChunk });

  const info: EngineInfo = {
    modelPath: init.modelPath,
    architecture: engine.architecture,
    vocabSize: engine.stepper.vocabSize,
    contextLength: engine.stepper.contextLength,
    stopIds: engine.tokenizer?.stopIds ?? [],
    hasTokenizer: engine.tokenizer !== undefined,
    weightBytes: engine.weightBytes,
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
            value = await serial(() =>
              generator.generate(msg.request, { signal: ac.signal, onToken: (event) => send({ type: "token", id, event }) }),
            );
          } finally {
            cancels.delete(id);
          }
          break;
        }
        case "bench":
          value = await serial(() => bench(msg.bench));
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
      send({ type: "error", id, error: wire(e) });
    }
  }

  port.on("message", (msg: ToWorker) => void handle(msg));
}
