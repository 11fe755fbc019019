import { TesseraError } from "../../../src/errors.js";
import type { EngineOptions } from "../../../src/engine/types.js";
import type { LoadedEngine } from "../../../src/engine/backend.js";
import { qwenTokenizer, ScriptedStepper } from "./helpers.js";

/**
 * Engine backend for worker tests. The "model path" is a spec: "script:<busyMs>:<text>" replays
 * the tokens of <text> after any prompt and burns <busyMs> of CPU per forward (like a synchronous
 * ORT run); "ids:<busyMs>:1,2,3" does the same with token ids and no tokenizer (quick to load);
 * "fail:<message>" fails to load with a TesseraError.
 */
export async function openEngine(spec: string, opts: EngineOptions): Promise<LoadedEngine> {
  const [kind, a, ...rest] = spec.split(":");
  if (kind === "fail") throw new TesseraError(a ?? "failed", "fake-model");
  if (kind !== "script" && kind !== "ids") throw new Error(`fake backend: bad spec ${spec}`);
  const tokenizer = kind === "script" ? await qwenTokenizer() : undefined;
  const script = tokenizer ? tokenizer.encode(rest.join(":")) : rest.join(":").split(",").map(Number);
  const busyMs = Number(a);
  let promptLength = 0;
  const stepper = new ScriptedStepper(tokenizer?.vocabSize ?? 151_669, opts.contextLength ?? 1024, (h) => script[(h.length - promptLength) % script.length]!, { busyMs });
  const forward = stepper.forward.bind(stepper);
  // The script restarts after each new prompt: the first forward of a sequence is the prefill.
  stepper.forward = (tokens) => {
    if (stepper.position === 0) promptLength = tokens.length;
    return forward(tokens);
  };
  return { stepper, tokenizer, architecture: "fake", close: async () => {} };
}
