import type { Command } from "../main.js";
import { TesseraError } from "../../errors.js";
import { intOption, numberOption, parseCommandArgs } from "../args.js";
import { EngineWorker } from "../../inference/worker/engine-worker.js";
import { resolveRequest, type PromptInput } from "../../inference/request.js";
import { SAMPLING_PRESETS } from "../../inference/sampling.js";
import type { ChatMessage } from "../../models/types.js";
import { ENGINE_FLAGS, engineFlags, modelArgument } from "./engine-flags.js";
import { SHARDING_FLAGS, shardingFlags, withSharding } from "../../runner/cli.js";

const USAGE =
  "tessera run MODEL [PROMPT | -] [--raw] [--system TEXT] [--max-tokens N] [--temperature T] [--top-k K] " +
  "[--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--ignore-eos] [--threads N] [--ctx N] " +
  "[--device cpu|webgpu|cuda] [--pp N] [--tp M] [--compress-activations] [--json]";

// Sampling defaults are llama.cpp's (llama-cli), so both tools answer alike out of the box.
const DEFAULTS = SAMPLING_PRESETS["llama.cpp"]!;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function write(text: string): Promise<void> {
  if (process.stdout.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    if (process.stdout.write(text)) resolve();
    else {
      process.stdout.once("drain", resolve);
      process.stdout.once("close", resolve);
    }
  });
}

export const command: Command = {
  summary:
    "Generates text from a model on this machine. The answer streams to stdout, statistics go to stderr; " +
    "PROMPT '-' (or no PROMPT with piped input) reads stdin. The prompt goes through the model's chat template " +
    "unless --raw. --json prints one object {promptTokens, tokens, text, prefillTps, decodeTps, ...} instead.",
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, {
      ...ENGINE_FLAGS,
      ...SHARDING_FLAGS,
      raw: { type: "boolean" },
      system: { type: "string" },
      "max-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-k": { type: "string" },
      "top-p": { type: "string" },
      "min-p": { type: "string" },
      "repeat-penalty": { type: "string" },
      seed: { type: "string" },
      "ignore-eos": { type: "boolean" },
      json: { type: "boolean" },
      pp: { type: "string" },
    });
    const pp = intOption("pp", values.pp, 1, 1);
    const model = modelArgument(positionals, USAGE);
    if (positionals.length > 2) throw new TesseraError(`expected MODEL and at most one PROMPT, got ${positionals.length} arguments (quote the prompt)`);
    const flags = engineFlags(values);
    const sharding = shardingFlags(values, pp, flags.tp);
    const sampling = {
      temperature: numberOption("temperature", values.temperature, DEFAULTS.temperature),
      topK: intOption("top-k", values["top-k"], DEFAULTS.topK),
      topP: numberOption("top-p", values["top-p"], DEFAULTS.topP),
      minP: numberOption("min-p", values["min-p"], DEFAULTS.minP),
      repetitionPenalty: numberOption("repeat-penalty", values["repeat-penalty"], DEFAULTS.repetitionPenalty),
      seed: values.seed === undefined ? undefined : intOption("seed", values.seed, 0),
    };
    const maxTokens = values["max-tokens"] === undefined ? undefined : intOption("max-tokens", values["max-tokens"], 1, 1);
    let prompt = positionals[1];
    if (prompt === "-" || (prompt === undefined && !process.stdin.isTTY)) prompt = await readStdin();
    if (prompt === undefined) throw new TesseraError(`missing PROMPT (or '-' to read it from stdin)\nusage: ${USAGE}`);
    const messages: ChatMessage[] = [];
    if (typeof values.system === "string") messages.push({ role: "system", content: values.system });
    messages.push({ role: "user", content: prompt });
    const input: PromptInput = values.raw ? { kind: "text", text: prompt } : { kind: "chat", messages };
    // bad values fail here, before a model is loaded
    const request = resolveRequest({ input, maxTokens, ...sampling, ...(values["ignore-eos"] ? { stopTokenIds: [] } : {}) }, { defaults: DEFAULTS });
    const json = values.json === true;

    const engine = await EngineWorker.start(
      model,
      withSharding({ threads: flags.threads, device: flags.device, contextLength: flags.contextLength }, sharding),
    );
    const ac = new AbortController();
    const onSigint = () => ac.abort();
    // A reader that goes away (`| head`) ends the generation instead of crashing on EPIPE.
    const onStdoutError = () => ac.abort();
    process.once("SIGINT", onSigint);
    process.stdout.on("error", onStdoutError);
    try {
      if (!engine.info.hasTokenizer) throw new TesseraError("the model has no tokenizer", model);
      let pending = Promise.resolve();
      const result = await engine.generate(request, {
        signal: ac.signal,
        onToken: json ? undefined : (e) => {
          if (e.text) pending = pending.then(() => write(e.text));
        },
      });
      await pending;
      const t = result.timings;
      if (json) {
        const out = {
          promptTokens: await engine.encode(values.raw ? prompt : await engine.applyChatTemplate(messages), { addSpecial: values.raw === true }),
          tokens: result.tokens,
          text: result.text,
          prefillTps: t.prefillTps,
          decodeTps: t.decodeTps,
          finishReason: result.finishReason,
          seed: result.seed,
        };
        await write(JSON.stringify(out) + "\n");
      } else {
        await write("\n");
        process.stderr.write(
          `\nprompt: ${t.promptTokens} tokens, prefill ${t.prefillTps.toFixed(1)} tok/s | ` +
            `generated: ${t.generatedTokens} tokens, decode ${t.decodeTps.toFixed(1)} tok/s | ` +
            `finish: ${result.finishReason} | seed ${result.seed}\n`,
        );
      }
      return ac.signal.aborted && !process.stdout.destroyed ? 130 : 0;
    } finally {
      process.off("SIGINT", onSigint);
      process.stdout.off("error", onStdoutError);
      await engine.close();
    }
  },
};
