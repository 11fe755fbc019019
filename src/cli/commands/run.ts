import { basename } from "node:path";
import type { Command } from "../main.js";
import { TesseraError } from "../../errors.js";
import { checkPath, flag, parseFlags, usageText } from "../flags.js";
import { progress } from "../progress.js";
import type { EngineWorker } from "../../inference/worker/engine-worker.js";
import { resolveRequest, type PromptInput } from "../../inference/request.js";
import { SAMPLING_PRESETS } from "../../inference/sampling.js";
import type { ChatMessage } from "../../models/types.js";
import { ENGINE_FLAGS, shardingFlags, deviceFlag } from "./engine-flags.js";


/** Without --max-tokens a run stops here (or at the end-of-sequence token, or when the context is full). */
export const DEFAULT_MAX_TOKENS = 512;

// Sampling defaults are llama.cpp's (llama-cli), so both tools answer alike out of the box.
const DEFAULTS = SAMPLING_PRESETS["llama.cpp"]!;

const FLAGS = {
  raw: flag.bool({ help: "send PROMPT as is, without the model's chat template" }),
  system: flag.string({ metavar: "TEXT", help: "system message (chat template only)" }),
  "max-tokens": flag.int({ min: 1, help: "stop after N generated tokens", defaultText: `${DEFAULT_MAX_TOKENS}, or what the context has room for` }),
  "ignore-eos": flag.bool({ help: "keep generating past the end-of-sequence token" }),
  temperature: flag.number({ min: 0, default: DEFAULTS.temperature, help: "sampling temperature; 0 = greedy" }),
  "top-k": flag.int({ min: 0, default: DEFAULTS.topK, metavar: "K", help: "sample from the K most likely tokens; 0 = all" }),
  "top-p": flag.number({ min: 0, above: true, max: 1, default: DEFAULTS.topP, metavar: "P", help: "nucleus sampling: the smallest set of tokens with this much probability" }),
  "min-p": flag.number({ min: 0, max: 1, default: DEFAULTS.minP, metavar: "P", help: "drop tokens less likely than P × the most likely one" }),
  "repeat-penalty": flag.number({ min: 0, above: true, default: DEFAULTS.repetitionPenalty, metavar: "R", help: "penalty for tokens already in the text; 1 = none" }),
  seed: flag.int({ min: 0, max: 0xffffffff, metavar: "S", help: "random seed (same seed, same answer)", defaultText: "random" }),
  json: flag.bool({ help: "print one JSON object {promptTokens, tokens, text, prefillTps, decodeTps, finishReason, seed} instead" }),
  ...ENGINE_FLAGS,
  pp: flag.renamed("pipeline stages are --stages"),
};

const SYNOPSIS = "tessera run MODEL [PROMPT | -] [options]";

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
    `unless --raw. Generation stops at the end-of-sequence token, after --max-tokens (default ${DEFAULT_MAX_TOKENS}), ` +
    "or when the context is full, and says which.",
  usage: usageText(SYNOPSIS, FLAGS, ["MODEL is a .gguf file or a safetensors / MLX folder."]),
  async run(argv) {
    const { values, positionals } = parseFlags(argv, FLAGS, { positionals: { max: 2, usage: SYNOPSIS } });
    const model = positionals[0];
    if (model === undefined) throw new TesseraError(`missing MODEL (usage: ${SYNOPSIS})`);
    checkPath(model, "input", "");
    const sharding = shardingFlags(values, values.stages, values.tp);
    const sampling = {
      temperature: values.temperature,
      topK: values["top-k"],
      topP: values["top-p"],
      minP: values["min-p"],
      repetitionPenalty: values["repeat-penalty"],
      seed: values.seed,
    };
    let prompt = positionals[1];
    if (prompt === "-" || (prompt === undefined && !process.stdin.isTTY)) prompt = await readStdin();
    if (prompt === undefined) throw new TesseraError(`missing PROMPT (or '-' to read it from stdin; usage: ${SYNOPSIS})`);
    const messages: ChatMessage[] = [];
    if (values.system !== undefined) messages.push({ role: "system", content: values.system });
    messages.push({ role: "user", content: prompt });
    const input: PromptInput = values.raw ? { kind: "text", text: prompt } : { kind: "chat", messages };
    // Past the context's room the generation stops there (finish "length"), and the note below says so.
    const maxTokens = values["max-tokens"] ?? DEFAULT_MAX_TOKENS;
    // bad values fail here, before a model is loaded
    const request = resolveRequest({ input, maxTokens, ...sampling, ...(values["ignore-eos"] ? { stopTokenIds: [] } : {}) }, { defaults: DEFAULTS });
    const json = values.json;

    // The engine's modules load only once the options are known to be good.
    const [{ EngineWorker }, { preflight, withSharding }] = await Promise.all([import("../../inference/worker/engine-worker.js"), import("../../runner/cli.js")]);
    const contextLength = await preflight(model, sharding, values.ctx);
    const device = await deviceFlag(values.device);
    const shown = progress(`loading ${basename(model)}`);
    let engine: EngineWorker;
    try {
      engine = await EngineWorker.start(
        model,
        withSharding({ threads: values.threads, device, contextLength, onProgress: (p) => shown.update(p) }, sharding),
      );
    } finally {
      shown.done();
    }
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
      const room = engine.info.contextLength - t.promptTokens;
      const note = stopNote(result.finishReason, result.tokens.length, values["max-tokens"] !== undefined, room);
      if (json) {
        const promptText = values.raw ? prompt : await engine.applyChatTemplate(messages, { addGenerationPrompt: true });
        const out = {
          promptTokens: await engine.encode(promptText, { addSpecial: values.raw }),
          tokens: result.tokens,
          text: result.text,
          prefillTps: t.prefillTps,
          decodeTps: t.decodeTps,
          finishReason: result.finishReason,
          seed: result.seed,
        };
        await write(JSON.stringify(out) + "\n");
        if (note) process.stderr.write(`${note}\n`);
      } else {
        await write("\n");
        process.stderr.write(
          `\nprompt: ${t.promptTokens} tokens, prefill ${t.prefillTps.toFixed(1)} tok/s | ` +
            `generated: ${t.generatedTokens} tokens, decode ${t.decodeTps.toFixed(1)} tok/s | ` +
            `finish: ${result.finishReason} | seed ${result.seed}\n` +
            (note ? `${note}\n` : ""),
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

/**
 * A line saying why a run ended where "length" alone does not tell: the default cap or a full
 * context (the user's own --max-tokens needs no explanation).
 */
export function stopNote(finish: string, generated: number, explicitMax: boolean, room: number): string | undefined {
  if (finish !== "length") return undefined;
  if (generated >= room) return `stopped: the context is full after ${generated} tokens (a larger --ctx holds more)`;
  if (!explicitMax) return `stopped at the default cap of ${DEFAULT_MAX_TOKENS} tokens (--max-tokens N to change it)`;
  return undefined;
}
