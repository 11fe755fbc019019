import { TesseraError } from "../../errors.js";
import { FORMATS, QUANTS, VOCABS, synthesize } from "../../models/synth/synthesize.js";
import { ARCHITECTURES, PRESETS, type PresetName } from "../../models/synth/presets.js";
import { checkPath, flag, parseFlags, usageText } from "../flags.js";
import { progress } from "../progress.js";
import type { Command } from "../main.js";

const FLAGS = {
  arch: flag.choice(ARCHITECTURES, { help: "architecture (required)" }),
  preset: flag.choice(Object.keys(PRESETS) as PresetName[], { help: "size: tiny and small for tests, 1b for benchmarks (required)" }),
  format: flag.choice(FORMATS, { help: "file format: one .gguf file, or a Hugging Face safetensors / MLX folder (required)" }),
  quant: flag.choice(QUANTS, { help: "weight type", defaultText: "f16; mlx4 with --format mlx" }),
  out: flag.string({ metavar: "PATH", help: "file (gguf) or folder (safetensors, mlx) to write; its parent folder must exist (required)" }),
  seed: flag.int({ min: 0, max: 0xffffffff, default: 0, help: "random seed of the weights" }),
  vocab: flag.choice(VOCABS, { help: "tokenizer: Qwen3's real one, or a small SentencePiece one (gguf only)", defaultText: "qwen3" }),
  tied: flag.bool({ help: "lm_head shares the embedding table" }),
};

const SYNOPSIS = "tessera synth --arch A --preset P --format F --out PATH [options]";

export const command: Command = {
  summary:
    "Writes a deterministic synthetic model in a real format: a real architecture and tokenizer with random " +
    "weights, so its output is not language. For tests and benchmarks where no real weights can be downloaded.",
  usage: usageText(SYNOPSIS, FLAGS),
  async run(argv) {
    const { values } = parseFlags(argv, FLAGS, { positionals: { max: 0, usage: SYNOPSIS } });
    const { arch, preset, format, out } = values;
    if (arch === undefined) throw new TesseraError(`--arch is required (${ARCHITECTURES.join(", ")})`);
    if (preset === undefined) throw new TesseraError(`--preset is required (${Object.keys(PRESETS).join(", ")})`);
    if (format === undefined) throw new TesseraError(`--format is required (${FORMATS.join(", ")})`);
    if (out === undefined) throw new TesseraError("--out is required (the file or folder to write)");
    checkPath(out, format === "gguf" ? "output" : "output-folder", "--out");
    const started = Date.now();
    const shown = progress("synth");
    let result;
    try {
      result = await synthesize({
        arch,
        preset,
        format,
        quant: values.quant,
        out,
        seed: values.seed,
        vocab: values.vocab,
        tied: values.tied,
        onProgress: (done, total, tensor) => shown.update({ done, total, note: tensor }),
      });
    } finally {
      shown.done();
    }
    const c = result.config;
    console.log(
      `wrote ${result.path}: ${c.architecture} ${preset} ${result.format} ${result.quant}, ` +
        `${c.numLayers} layers, hidden ${c.hiddenSize}, vocab ${c.vocabSize}, ${(result.bytes / 2 ** 20).toFixed(1)} MiB of tensors ` +
        `in ${((Date.now() - started) / 1000).toFixed(1)} s (random weights: its output is not language)`,
    );
    return 0;
  },
};
