import { TesseraError } from "../../errors.js";
import { synthesize, type SynthFormat, type SynthQuant, type SynthVocab } from "../../models/synth/synthesize.js";
import { ARCHITECTURES, type PresetName, type SynthArch } from "../../models/synth/presets.js";
import { intOption, parseCommandArgs } from "../args.js";
import type { Command } from "../main.js";

const PROGRESS_MIN_BYTES = 64 * 1024 * 1024;

export const command: Command = {
  summary: "write a deterministic synthetic model (GGUF, safetensors, MLX)",
  usage:
    `tessera synth --arch ${ARCHITECTURES.join("|")} --preset tiny|small|1b --format gguf|safetensors|mlx ` +
    "--quant f32|f16|bf16|q8_0|q4_0|q4_k|q6_k|mlx4|mlx8 --out PATH [--seed N] [--vocab qwen3|spm] [--tied]",
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        arch: { type: "string" },
        preset: { type: "string" },
        format: { type: "string" },
        quant: { type: "string" },
        out: { type: "string" },
        seed: { type: "string" },
        vocab: { type: "string" },
        tied: { type: "boolean" },
      },
      { envFallback: false },
    );
    if (positionals.length > 0) throw new TesseraError(`unexpected argument '${positionals[0]}'`);
    for (const required of ["arch", "preset", "format", "out"] as const) {
      if (values[required] === undefined) throw new TesseraError(`--${required} is required`);
    }
    let lastShown = -1;
    const started = Date.now();
    const result = await synthesize({
      arch: values.arch as SynthArch,
      preset: values.preset as PresetName,
      format: values.format as SynthFormat,
      quant: values.quant as SynthQuant | undefined,
      out: values.out as string,
      seed: intOption("seed", values.seed, 0),
      vocab: values.vocab as SynthVocab | undefined,
      tied: values.tied === true,
      onProgress(done, total, tensor) {
        if (total < PROGRESS_MIN_BYTES) return;
        const pct = Math.floor((100 * done) / total);
        if (pct >= lastShown + 5 || done === total) {
          lastShown = pct;
          process.stderr.write(`synth: ${pct}% (${(done / 2 ** 20).toFixed(0)} / ${(total / 2 ** 20).toFixed(0)} MiB) ${tensor}\n`);
        }
      },
    });
    const c = result.config;
    console.log(
      `wrote ${result.path}: ${c.architecture} ${values.preset} ${result.format} ${result.quant}, ` +
        `${c.numLayers} layers, hidden ${c.hiddenSize}, vocab ${c.vocabSize}, ${(result.bytes / 2 ** 20).toFixed(1)} MiB of tensors ` +
        `in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    return 0;
  },
};
