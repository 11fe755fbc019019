import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { synthesize, type SynthQuant } from "../../../src/models/synth/synthesize.js";
import { GgufFile, writeGguf } from "../../../src/models/gguf/index.js";
import { loadTokenizer } from "../../../src/models/tokenizer/index.js";
import type { EncodeOptions } from "../../../src/models/tokenizer/index.js";
import type { Tokenizer } from "../../../src/models/types.js";
import { TOKENIZER_STRINGS } from "../tokenizer/strings.js";
import { greedyTokens, llama, withModel } from "./llama.js";

/**
 * llama.cpp (node-llama-cpp 3.21.1, CPU) as the reference: it must load every synthetic GGUF variant,
 * decode them without degenerating, and tokenize exactly as our GGUF tokenizers do.
 */
const dir = await mkdtemp(join(tmpdir(), "tessera-llamacpp-"));
after(async () => {
  await (await llama()).dispose();
  await rm(dir, { recursive: true, force: true });
});

const ARCHS = ["llama", "qwen2", "qwen3"] as const;
const QUANTS: SynthQuant[] = ["f16", "q8_0", "q4_0", "q4_k"];

const written = new Set<string>();

async function model(arch: string, quant: SynthQuant, vocab: "qwen3" | "spm" = "qwen3", skipRopePermutation = false): Promise<string> {
  const out = join(dir, `${arch}-${quant}-${vocab}${skipRopePermutation ? "-wrong" : ""}.gguf`);
  if (!written.has(out)) {
    await synthesize({ arch: arch as "llama", preset: "tiny", format: "gguf", quant, vocab, seed: 1, out, skipRopePermutation });
    written.add(out);
  }
  return out;
}

const PROMPT = "The quick brown fox jumps over the lazy dog.";

for (const arch of ARCHS) {
  test(`llama.cpp loads ${arch} × ${QUANTS.join(", ")} and decodes them alike`, async () => {
    const runs = new Map<SynthQuant, number[]>();
    for (const quant of QUANTS) {
      const path = await model(arch, quant);
      await withModel(path, async (m) => {
        assert.equal(m.fileInfo.metadata.general.architecture, arch);
        const prompt = m.tokenize(PROMPT);
        runs.set(quant, await greedyTokens(m, prompt, 16));
      });
    }
    for (const [quant, tokens] of runs) {
      assert.ok(new Set(tokens).size >= 8, `${arch} ${quant}: greedy output collapsed: ${tokens.join(",")}`);
    }
    // Same weights up to rounding: the peaked distribution keeps greedy decoding identical at every
    // width (measured: 16 of 16 tokens equal for each; the test below shows a wrong model does not).
    for (const quant of QUANTS.slice(1)) assert.deepEqual(runs.get(quant), runs.get("f16"), `${arch}: f16 and ${quant} disagree`);
  });
}

test("a llama GGUF without the rope permutation (a wrong model) decodes to other tokens", async () => {
  const right = await withModel(await model("llama", "f16"), async (m) => greedyTokens(m, Array.from(m.tokenize(PROMPT)), 16));
  const wrong = await withModel(await model("llama", "f16", "qwen3", true), async (m) => greedyTokens(m, Array.from(m.tokenize(PROMPT)), 16));
  const same = right.filter((t, i) => t === wrong[i]).length;
  assert.ok(same <= 4, `only ${16 - same} of 16 tokens changed`);
});

async function compareTokenization(path: string, ours: Tokenizer & { encode(t: string, o?: EncodeOptions): number[] }, extra: string[]) {
  await withModel(path, async (m) => {
    for (const s of [...TOKENIZER_STRINGS, ...extra]) {
      assert.deepEqual(ours.encode(s), Array.from(m.tokenize(s, true)), `special tokens parsed: ${JSON.stringify(s)}`);
      assert.deepEqual(ours.encode(s, { parseSpecial: false }), Array.from(m.tokenize(s, false)), `plain text: ${JSON.stringify(s)}`);
      assert.equal(m.detokenize(m.tokenize(s, false) as never, false), ours.decode(ours.encode(s, { parseSpecial: false })));
    }
  });
}

test("llama.cpp tokenizes like our gpt2/qwen2 GGUF tokenizer (Qwen3 vocabulary)", async () => {
  const path = await model("qwen3", "f16");
  const ours = await loadTokenizer(path);
  await compareTokenization(path, ours as never, ["<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n", "<think>\nok\n</think>"]);
});

test("llama.cpp tokenizes like our SentencePiece GGUF tokenizer (synthetic spm vocabulary)", async () => {
  const path = await model("llama", "f16", "spm");
  const ours = await loadTokenizer(path);
  assert.equal(ours.vocabSize, 4096);
  await compareTokenization(path, ours as never, ["<s>text after bos</s> and more", "</s>x"]);
});

/** The same file with another `tokenizer.ggml.pre`, so llama.cpp runs another pre-tokenizer over the Qwen3 vocabulary. */
async function withPreTokenizer(path: string, pre: string): Promise<string> {
  const src = await GgufFile.open(path);
  const out = join(dir, `pre-${pre}.gguf`);
  try {
    const metadata = new Map(src.typedMetadata);
    metadata.set("tokenizer.ggml.pre", { type: "string", value: pre });
    await writeGguf(out, {
      metadata,
      tensors: src.tensors.map((t) => ({ name: t.name, type: t.type, shape: t.shape, data: async () => (await src.read(t.name)).data })),
    });
  } finally {
    await src.close();
  }
  return out;
}

test("llama.cpp and our tokenizer agree for the llama-bpe (llama3) and default pre-tokenizers too", async () => {
  for (const pre of ["llama-bpe", "default"]) {
    const path = await withPreTokenizer(await model("qwen3", "f16"), pre);
    const ours = await loadTokenizer(path);
    await compareTokenization(path, ours as never, ["12345678 1234 x"]);
  }
});
