import { TesseraError } from "../../errors.js";
import { BITS_PER_WEIGHT, CATALOG, type CatalogEntry, type GgufQuant, type MlxBits } from "./catalog.js";

/**
 * What `tessera pull X` names, parsed without any I/O:
 *   qwen3:8b, qwen3:8b-q8_0, qwen3:8b-mlx, qwen3:8b-mlx-8bit, qwen3   a catalog entry and a variant
 *   hf.co/ORG/REPO[:TAG], huggingface.co/ORG/REPO[:TAG], ORG/REPO[:TAG]
 *                  a hub repo; TAG is a quantization matched to its GGUF files (Ollama's reading) or an
 *                  exact file name; no TAG: Q4_K_M if the repo has it, its only GGUF file, or (no GGUF
 *                  at all) the safetensors/MLX folder
 *   https://huggingface.co/ORG/REPO[/resolve/REV/FILE]   the same, from a browser URL
 *   http(s)://any/host/file.gguf                         a plain URL (no sha256 to check against)
 */
export type PullRef =
  | { kind: "hf"; repo: string; revision: string; tag?: string; catalog?: CatalogEntry; format?: "gguf" | "mlx"; name?: string }
  | { kind: "url"; url: string };

export interface VariantChoice {
  /** GGUF quantization or MLX bit width. */
  quant?: string;
  format?: "gguf" | "mlx";
}

const REPO = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

export function findCatalogEntry(name: string): CatalogEntry | undefined {
  const lower = name.toLowerCase();
  return CATALOG.find((e) => e.name === lower || e.aliases.some((a) => a.toLowerCase() === lower));
}

/** Parses a pull reference; `choice` (--quant, --format) picks among a catalog entry's variants. */
export function parsePullRef(ref: string, choice: VariantChoice = {}): PullRef {
  const text = ref.trim();
  if (!text) throw new TesseraError("name a model to pull: a catalog name (qwen3:8b), hf.co/ORG/REPO[:TAG] or a URL");
  if (/^https?:\/\//i.test(text)) return parseUrl(text);
  const hf = /^(?:hf\.co\/|huggingface\.co\/)?([^:\s]+\/[^:\s]+)(?::(.+))?$/i.exec(text);
  if (hf && (/^(hf\.co|huggingface\.co)\//i.test(text) || REPO.test(hf[1]!))) {
    const repo = hf[1]!;
    if (!REPO.test(repo)) throw new TesseraError(`'${repo}' is not a Hugging Face repo name (ORG/REPO)`);
    return { kind: "hf", repo, revision: "main", ...(hf[2] ? { tag: hf[2] } : {}), ...(choice.quant ? { tag: choice.quant } : {}), ...(choice.format ? { format: choice.format } : {}) };
  }
  return catalogRef(text, choice);
}

function parseUrl(url: string): PullRef {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TesseraError(`not a valid URL: '${url}'`);
  }
  if (/^(www\.)?(huggingface\.co|hf\.co)$/i.test(u.hostname)) {
    const parts = u.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    if (parts.length === 2) return { kind: "hf", repo: `${parts[0]}/${parts[1]}`, revision: "main" };
    if (parts.length >= 5 && (parts[2] === "resolve" || parts[2] === "blob")) {
      return { kind: "hf", repo: `${parts[0]}/${parts[1]}`, revision: parts[3]!, tag: parts.slice(4).join("/") };
    }
    if (parts.length >= 4 && parts[2] === "tree") return { kind: "hf", repo: `${parts[0]}/${parts[1]}`, revision: parts[3]! };
  }
  return { kind: "url", url: u.toString() };
}

/** "qwen3:8b-q8_0" → entry qwen3:8b, quant Q8_0; "qwen3:8b-mlx-8bit" → MLX 8bit. */
function catalogRef(text: string, choice: VariantChoice): PullRef {
  let entry = findCatalogEntry(text);
  let suffix = "";
  if (!entry) {
    // longest catalog name (or alias) that the text starts with, followed by "-"
    for (const e of CATALOG) {
      for (const n of [e.name, ...e.aliases]) {
        if (text.toLowerCase().startsWith(n.toLowerCase() + "-") && n.length > (entry ? suffix.length : 0)) {
          entry = e;
          suffix = text.slice(n.length + 1);
        }
      }
    }
  }
  if (!entry) {
    throw new TesseraError(`'${text}' is not in the catalog (see \`tessera models catalog\`); for any Hugging Face repo use hf.co/ORG/REPO[:QUANT]`);
  }
  const want = parseVariantSuffix(suffix, choice);
  return pickVariant(entry, want);
}

function parseVariantSuffix(suffix: string, choice: VariantChoice): VariantChoice {
  const s = suffix.toLowerCase();
  if (!s) return choice;
  if (s === "mlx") return { format: "mlx", quant: choice.quant };
  const mlx = /^mlx-(\d+bit)$/.exec(s);
  if (mlx) return { format: "mlx", quant: mlx[1] };
  return { format: choice.format ?? "gguf", quant: s.toUpperCase() };
}

/** The hub repo and tag of the variant asked for, or an error that lists the variants there are. */
export function pickVariant(entry: CatalogEntry, want: VariantChoice): PullRef {
  const format = want.format ?? (entry.gguf ? "gguf" : "mlx");
  if (format === "gguf") {
    const files = entry.gguf?.files ?? {};
    const quant = (want.quant?.toUpperCase() ?? (files.Q4_K_M ? "Q4_K_M" : Object.keys(files)[0])) as GgufQuant | undefined;
    const file = quant ? files[quant] : undefined;
    if (!entry.gguf || !file) throw new TesseraError(`${entry.name} has no GGUF ${want.quant ?? ""} variant here; variants: ${variantNames(entry).join(", ")}`);
    const isDefault = quant === (files.Q4_K_M ? "Q4_K_M" : Object.keys(files)[0]);
    return { kind: "hf", repo: entry.gguf.repo, revision: "main", tag: file, catalog: entry, format: "gguf", name: isDefault ? entry.name : `${entry.name}-${quant!.toLowerCase()}` };
  }
  const bits = (want.quant?.toLowerCase() ?? (entry.mlx?.["4bit"] ? "4bit" : Object.keys(entry.mlx ?? {})[0])) as MlxBits | undefined;
  const repo = bits ? entry.mlx?.[bits] : undefined;
  if (!repo) throw new TesseraError(`${entry.name} has no MLX ${want.quant ?? ""} variant here; variants: ${variantNames(entry).join(", ")}`);
  return { kind: "hf", repo, revision: "main", catalog: entry, format: "mlx", name: `${entry.name}-mlx-${bits}` };
}

/** "qwen3:8b" (default), "qwen3:8b-q8_0", "qwen3:8b-mlx", "qwen3:8b-mlx-8bit" ... */
export function variantNames(entry: CatalogEntry): string[] {
  const out: string[] = [];
  for (const q of Object.keys(entry.gguf?.files ?? {})) out.push(`${entry.name}-${q.toLowerCase()}`);
  for (const b of Object.keys(entry.mlx ?? {})) out.push(`${entry.name}-mlx-${b}`);
  return out;
}

/** Estimated bytes of a variant (parameters × bits per weight); the hub has the exact number. */
export function estimateBytes(entry: CatalogEntry, quant: GgufQuant | MlxBits): number {
  return Math.round((entry.parameters * BITS_PER_WEIGHT[quant]) / 8);
}

const SPLIT = /-(\d{5})-of-(\d{5})\.gguf$/i;

/**
 * Which GGUF file of a repo a tag names: the exact file (or path) name, else the one file whose name
 * ends in "<sep>TAG.gguf" (separator -, . or _; case-insensitive). No tag: Q4_K_M when there is one,
 * else the only GGUF file. Vision projectors (mmproj) are never the model. Returns undefined when
 * the repo has no GGUF files at all (a safetensors/MLX repo).
 */
export function pickGgufFile(files: string[], tag: string | undefined, repo: string): string | undefined {
  const ggufs = files.filter((f) => f.toLowerCase().endsWith(".gguf") && !/mmproj/i.test(f));
  if (tag && files.includes(tag)) return checkSingle(tag, repo);
  if (ggufs.length === 0) {
    if (tag && /\.gguf$/i.test(tag)) throw new TesseraError(`${repo} has no file '${tag}'`);
    return undefined;
  }
  const want = tag ?? "Q4_K_M";
  const re = new RegExp(`[-._]${want.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(-\\d{5}-of-\\d{5})?\\.gguf$`, "i");
  const matches = ggufs.filter((f) => re.test(f.split("/").pop()!));
  const firstParts = matches.filter((f) => !SPLIT.test(f) || /-00001-of-/i.test(f));
  if (firstParts.length === 1) return checkSingle(firstParts[0]!, repo);
  if (firstParts.length > 1) throw new TesseraError(`${repo}: '${want}' matches ${firstParts.length} files (${firstParts.join(", ")}); name one exactly`);
  if (!tag && ggufs.length === 1) return checkSingle(ggufs[0]!, repo);
  const quants = [...new Set(ggufs.map((f) => /[-._]([A-Za-z0-9_]+?)(-\d{5}-of-\d{5})?\.gguf$/i.exec(f)?.[1]).filter(Boolean))];
  throw new TesseraError(`${repo} has no GGUF file for '${want}'; it has: ${quants.join(", ") || ggufs.join(", ")}`);
}

function checkSingle(file: string, repo: string): string {
  if (SPLIT.test(file)) throw new TesseraError(`${repo}: ${file} is one part of a split GGUF; split GGUF files are not supported yet (pick a smaller quantization or the MLX variant)`);
  return file;
}
