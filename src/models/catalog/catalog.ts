/**
 * Well-known models: what `tessera pull qwen3:8b` means.
 *
 * How the names were checked (2026-12): every Hugging Face repo and GGUF file name below was looked up
 * in public code with the project's search tool (an exact-string search for
 * "<repo>/resolve/main/<file>" or "mlx-community/<repo>" found it used by several unrelated projects),
 * and the MLX repos that exo ships model cards for were also read from exo's
 * resources/inference_model_cards. Only names found that way are listed; quantizations not found are
 * left out even where the repo probably has them. A pull still asks the hub for the repo's file list
 * and takes the sizes and sha256 from there, so a renamed file fails with a clear error instead of a
 * wrong download.
 * Shapes (layers, attention heads, KV heads, context) are those of each base model's config.json;
 * `bytes` are estimates (parameters × bits per weight of the quantization), the exact size comes
 * from the hub when pulling.
 *
 * Layout of an entry:
 *   name          "family:size", Ollama style; the default variant is the first GGUF one
 *   aliases       other names that mean the same entry (the bare family name points at one size)
 *   architecture  GGUF general.architecture / HF model_type (whether the engine runs it is decided
 *                 by src/models/config.ts when the file is opened, not here)
 *   parameters    total; `activeParameters` for mixture-of-experts models
 *   gguf          one repo, and per quantization the exact file name
 *   mlx           per bit width, the repo (MLX repos are whole folders: all *.safetensors and the
 *                 JSON/tokenizer files are fetched)
 */
export interface CatalogEntry {
  name: string;
  aliases: string[];
  family: string;
  description: string;
  architecture: string;
  parameters: number;
  activeParameters?: number;
  layers: number;
  hiddenSize: number;
  heads: number;
  kvHeads: number;
  contextLength: number;
  gguf?: { repo: string; files: Partial<Record<GgufQuant, string>> };
  mlx?: Partial<Record<MlxBits, string>>;
}

export type GgufQuant = "Q4_0" | "Q4_K_M" | "Q5_K_M" | "Q6_K" | "Q8_0";
export type MlxBits = "4bit" | "8bit";

/** Bits per weight, for size estimates (ggml block sizes; MLX group 64 with f16 scale and bias). */
export const BITS_PER_WEIGHT: Record<GgufQuant | MlxBits, number> = {
  Q4_0: 4.5, Q4_K_M: 4.85, Q5_K_M: 5.69, Q6_K: 6.56, Q8_0: 8.5, "4bit": 4.5, "8bit": 8.5,
};

const qwen3 = (size: string, p: number, layers: number, hidden: number, heads: number, kv: number, ggufQuants: GgufQuant[], mlx: MlxBits[]): CatalogEntry => ({
  name: `qwen3:${size.toLowerCase()}`,
  aliases: [`qwen3-${size.toLowerCase()}`],
  family: "qwen3",
  description: `Qwen3 ${size}: dense, thinking and non-thinking modes (Apache-2.0)`,
  architecture: "qwen3",
  parameters: p,
  layers,
  hiddenSize: hidden,
  heads,
  kvHeads: kv,
  contextLength: 32768,
  gguf: { repo: `Qwen/Qwen3-${size}-GGUF`, files: Object.fromEntries(ggufQuants.map((q) => [q, `Qwen3-${size}-${q}.gguf`])) },
  mlx: Object.fromEntries(mlx.map((b) => [b, `mlx-community/Qwen3-${size}-${b}`])),
});

export const CATALOG: readonly CatalogEntry[] = [
  qwen3("0.6B", 0.6e9, 28, 1024, 16, 8, ["Q8_0"], ["4bit", "8bit"]),
  qwen3("1.7B", 1.7e9, 28, 2048, 16, 8, ["Q4_K_M", "Q8_0"], ["4bit"]),
  qwen3("4B", 4.0e9, 36, 2560, 32, 8, ["Q4_K_M", "Q8_0"], ["4bit"]),
  { ...qwen3("8B", 8.2e9, 36, 4096, 32, 8, ["Q4_K_M", "Q6_K", "Q8_0"], ["4bit", "8bit"]), aliases: ["qwen3", "qwen3-8b"] },
  qwen3("14B", 14.8e9, 40, 5120, 40, 8, ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"], ["4bit", "8bit"]),
  qwen3("32B", 32.8e9, 64, 5120, 64, 8, ["Q4_K_M"], ["4bit"]),
  {
    name: "qwen3:30b-a3b",
    aliases: ["qwen3-30b-a3b"],
    family: "qwen3",
    description: "Qwen3 30B-A3B: mixture of experts, 128 experts with 8 active per token (Apache-2.0)",
    architecture: "qwen3moe",
    parameters: 30.5e9,
    activeParameters: 3.3e9,
    layers: 48,
    hiddenSize: 2048,
    heads: 32,
    kvHeads: 4,
    contextLength: 32768,
    gguf: { repo: "Qwen/Qwen3-30B-A3B-GGUF", files: { Q4_K_M: "Qwen3-30B-A3B-Q4_K_M.gguf" } },
    mlx: { "4bit": "mlx-community/Qwen3-30B-A3B-4bit", "8bit": "mlx-community/Qwen3-30B-A3B-8bit" },
  },
  {
    name: "qwen3:235b-a22b-instruct-2507",
    aliases: ["qwen3-235b-a22b-instruct-2507", "qwen3:235b"],
    family: "qwen3",
    description: "Qwen3 235B-A22B Instruct 2507: mixture of experts, 22B active, 256k context (Apache-2.0); MLX only here (its GGUF ships split in parts)",
    architecture: "qwen3moe",
    parameters: 235e9,
    activeParameters: 22e9,
    layers: 94,
    hiddenSize: 4096,
    heads: 64,
    kvHeads: 4,
    contextLength: 262144,
    mlx: { "4bit": "mlx-community/Qwen3-235B-A22B-Instruct-2507-4bit", "8bit": "mlx-community/Qwen3-235B-A22B-Instruct-2507-8bit" },
  },
  {
    name: "llama3.2:1b",
    aliases: ["llama3.2-1b", "Llama-3.2-1B-Instruct"],
    family: "llama3.2",
    description: "Llama 3.2 1B Instruct (Llama 3.2 Community License)",
    architecture: "llama",
    parameters: 1.24e9,
    layers: 16,
    hiddenSize: 2048,
    heads: 32,
    kvHeads: 8,
    contextLength: 131072,
    gguf: { repo: "bartowski/Llama-3.2-1B-Instruct-GGUF", files: { Q4_K_M: "Llama-3.2-1B-Instruct-Q4_K_M.gguf", Q4_0: "Llama-3.2-1B-Instruct-Q4_0.gguf" } },
    mlx: { "4bit": "mlx-community/Llama-3.2-1B-Instruct-4bit" },
  },
  {
    name: "llama3.2:3b",
    aliases: ["llama3.2", "llama3.2-3b", "Llama-3.2-3B-Instruct"],
    family: "llama3.2",
    description: "Llama 3.2 3B Instruct (Llama 3.2 Community License)",
    architecture: "llama",
    parameters: 3.21e9,
    layers: 28,
    hiddenSize: 3072,
    heads: 24,
    kvHeads: 8,
    contextLength: 131072,
    gguf: { repo: "bartowski/Llama-3.2-3B-Instruct-GGUF", files: { Q4_K_M: "Llama-3.2-3B-Instruct-Q4_K_M.gguf", Q4_0: "Llama-3.2-3B-Instruct-Q4_0.gguf" } },
    mlx: { "4bit": "mlx-community/Llama-3.2-3B-Instruct-4bit", "8bit": "mlx-community/Llama-3.2-3B-Instruct-8bit" },
  },
  {
    name: "llama3.1:8b",
    aliases: ["llama3.1", "llama3.1-8b", "Meta-Llama-3.1-8B-Instruct"],
    family: "llama3.1",
    description: "Llama 3.1 8B Instruct (Llama 3.1 Community License)",
    architecture: "llama",
    parameters: 8.03e9,
    layers: 32,
    hiddenSize: 4096,
    heads: 32,
    kvHeads: 8,
    contextLength: 131072,
    gguf: {
      repo: "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
      files: { Q4_K_M: "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", Q4_0: "Meta-Llama-3.1-8B-Instruct-Q4_0.gguf", Q8_0: "Meta-Llama-3.1-8B-Instruct-Q8_0.gguf" },
    },
    mlx: { "4bit": "mlx-community/Meta-Llama-3.1-8B-Instruct-4bit", "8bit": "mlx-community/Meta-Llama-3.1-8B-Instruct-8bit" },
  },
  {
    name: "llama3.1:70b",
    aliases: ["llama3.1-70b", "Meta-Llama-3.1-70B-Instruct"],
    family: "llama3.1",
    description: "Llama 3.1 70B Instruct (Llama 3.1 Community License); MLX only here",
    architecture: "llama",
    parameters: 70.6e9,
    layers: 80,
    hiddenSize: 8192,
    heads: 64,
    kvHeads: 8,
    contextLength: 131072,
    mlx: { "4bit": "mlx-community/Meta-Llama-3.1-70B-Instruct-4bit" },
  },
  {
    name: "llama3.3:70b",
    aliases: ["llama3.3", "llama3.3-70b", "Llama-3.3-70B-Instruct"],
    family: "llama3.3",
    description: "Llama 3.3 70B Instruct (Llama 3.3 Community License)",
    architecture: "llama",
    parameters: 70.6e9,
    layers: 80,
    hiddenSize: 8192,
    heads: 64,
    kvHeads: 8,
    contextLength: 131072,
    gguf: { repo: "bartowski/Llama-3.3-70B-Instruct-GGUF", files: { Q4_K_M: "Llama-3.3-70B-Instruct-Q4_K_M.gguf" } },
    mlx: { "4bit": "mlx-community/Llama-3.3-70B-Instruct-4bit", "8bit": "mlx-community/Llama-3.3-70B-Instruct-8bit" },
  },
  {
    name: "mistral:7b",
    aliases: ["mistral", "mistral-7b", "Mistral-7B-Instruct-v0.3"],
    family: "mistral",
    description: "Mistral 7B Instruct v0.3 (Apache-2.0)",
    architecture: "llama",
    parameters: 7.25e9,
    layers: 32,
    hiddenSize: 4096,
    heads: 32,
    kvHeads: 8,
    contextLength: 32768,
    gguf: { repo: "bartowski/Mistral-7B-Instruct-v0.3-GGUF", files: { Q4_K_M: "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf" } },
    mlx: { "4bit": "mlx-community/Mistral-7B-Instruct-v0.3-4bit" },
  },
  {
    name: "mistral-nemo:12b",
    aliases: ["mistral-nemo", "Mistral-Nemo-Instruct-2407"],
    family: "mistral-nemo",
    description: "Mistral Nemo Instruct 2407, 12B, 128k context (Apache-2.0)",
    architecture: "llama",
    parameters: 12.2e9,
    layers: 40,
    hiddenSize: 5120,
    heads: 32,
    kvHeads: 8,
    contextLength: 131072,
    gguf: { repo: "bartowski/Mistral-Nemo-Instruct-2407-GGUF", files: { Q4_K_M: "Mistral-Nemo-Instruct-2407-Q4_K_M.gguf", Q4_0: "Mistral-Nemo-Instruct-2407-Q4_0.gguf" } },
    mlx: { "4bit": "mlx-community/Mistral-Nemo-Instruct-2407-4bit" },
  },
  {
    name: "gemma3:1b",
    aliases: ["gemma3-1b", "gemma-3-1b-it"],
    family: "gemma3",
    description: "Gemma 3 1B instruction-tuned (Gemma Terms of Use)",
    architecture: "gemma3",
    parameters: 1.0e9,
    layers: 26,
    hiddenSize: 1152,
    heads: 4,
    kvHeads: 1,
    contextLength: 32768,
    gguf: { repo: "ggml-org/gemma-3-1b-it-GGUF", files: { Q4_K_M: "gemma-3-1b-it-Q4_K_M.gguf", Q8_0: "gemma-3-1b-it-Q8_0.gguf" } },
    mlx: { "4bit": "mlx-community/gemma-3-1b-it-4bit" },
  },
  {
    name: "gemma3:4b",
    aliases: ["gemma3", "gemma3-4b", "gemma-3-4b-it"],
    family: "gemma3",
    description: "Gemma 3 4B instruction-tuned, text part (Gemma Terms of Use)",
    architecture: "gemma3",
    parameters: 4.3e9,
    layers: 34,
    hiddenSize: 2560,
    heads: 8,
    kvHeads: 4,
    contextLength: 131072,
    gguf: { repo: "unsloth/gemma-3-4b-it-GGUF", files: { Q4_K_M: "gemma-3-4b-it-Q4_K_M.gguf", Q5_K_M: "gemma-3-4b-it-Q5_K_M.gguf", Q8_0: "gemma-3-4b-it-Q8_0.gguf" } },
    mlx: { "4bit": "mlx-community/gemma-3-4b-it-4bit" },
  },
  {
    name: "gemma3:12b",
    aliases: ["gemma3-12b", "gemma-3-12b-it"],
    family: "gemma3",
    description: "Gemma 3 12B instruction-tuned, text part (Gemma Terms of Use)",
    architecture: "gemma3",
    parameters: 12.2e9,
    layers: 48,
    hiddenSize: 3840,
    heads: 16,
    kvHeads: 8,
    contextLength: 131072,
    gguf: { repo: "ggml-org/gemma-3-12b-it-GGUF", files: { Q4_K_M: "gemma-3-12b-it-Q4_K_M.gguf" } },
    mlx: { "4bit": "mlx-community/gemma-3-12b-it-4bit" },
  },
  {
    name: "gemma3:27b",
    aliases: ["gemma3-27b", "gemma-3-27b-it"],
    family: "gemma3",
    description: "Gemma 3 27B instruction-tuned, text part (Gemma Terms of Use)",
    architecture: "gemma3",
    parameters: 27.4e9,
    layers: 62,
    hiddenSize: 5376,
    heads: 32,
    kvHeads: 16,
    contextLength: 131072,
    gguf: { repo: "ggml-org/gemma-3-27b-it-GGUF", files: { Q4_K_M: "gemma-3-27b-it-Q4_K_M.gguf" } },
    mlx: { "4bit": "mlx-community/gemma-3-27b-it-4bit" },
  },
  {
    name: "phi4:14b",
    aliases: ["phi4", "phi-4"],
    family: "phi4",
    description: "Microsoft Phi-4, 14B, 16k context (MIT)",
    architecture: "phi3",
    parameters: 14.7e9,
    layers: 40,
    hiddenSize: 5120,
    heads: 40,
    kvHeads: 10,
    contextLength: 16384,
    gguf: { repo: "bartowski/phi-4-GGUF", files: { Q4_K_M: "phi-4-Q4_K_M.gguf" } },
    mlx: { "4bit": "mlx-community/phi-4-4bit" },
  },
];
