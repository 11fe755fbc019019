import { test } from "node:test";
import assert from "node:assert/strict";
import { isTesseraError } from "../../src/errors.js";
import { CATALOG } from "../../src/models/catalog/catalog.js";
import { findCatalogEntry, parsePullRef, pickGgufFile, variantNames } from "../../src/models/catalog/reference.js";

test("the catalog: unique names and aliases, GGUF files named after their quantization, sane shapes", () => {
  const names = new Set<string>();
  for (const e of CATALOG) {
    for (const n of [e.name, ...e.aliases].map((x) => x.toLowerCase())) {
      assert.ok(!names.has(n), `name ${n} appears twice`);
      names.add(n);
    }
    assert.match(e.name, /^[a-z0-9.-]+:[a-z0-9.-]+$/);
    assert.ok(e.gguf || e.mlx, `${e.name} has no variant`);
    for (const [q, f] of Object.entries(e.gguf?.files ?? {})) assert.ok(f!.endsWith(`${q}.gguf`), `${e.name}: ${f} is not a ${q} file`);
    for (const [b, repo] of Object.entries(e.mlx ?? {})) assert.ok(repo!.startsWith("mlx-community/") && repo!.endsWith(b), `${e.name}: ${repo}`);
    assert.equal(e.heads % e.kvHeads, 0, `${e.name}: heads ${e.heads} not a multiple of KV heads ${e.kvHeads}`);
    assert.ok(e.layers > 0 && e.contextLength >= 8192 && e.parameters > 1e8);
  }
  // the families the issue asks for are there
  for (const n of ["qwen3:0.6b", "qwen3:32b", "qwen3:30b-a3b", "llama3.2:1b", "llama3.3:70b", "mistral:7b", "mistral-nemo:12b", "gemma3:4b", "phi4:14b"]) {
    assert.ok(findCatalogEntry(n), n);
  }
});

test("catalog references pick a variant: default Q4_K_M, a quant suffix, MLX, and errors that list what exists", () => {
  assert.deepEqual(pick("qwen3:8b"), ["Qwen/Qwen3-8B-GGUF", "Qwen3-8B-Q4_K_M.gguf"]);
  assert.deepEqual(pick("qwen3"), ["Qwen/Qwen3-8B-GGUF", "Qwen3-8B-Q4_K_M.gguf"], "the bare family name");
  assert.deepEqual(pick("Qwen3-8B"), ["Qwen/Qwen3-8B-GGUF", "Qwen3-8B-Q4_K_M.gguf"], "an alias");
  assert.deepEqual(pick("qwen3:8b-q8_0"), ["Qwen/Qwen3-8B-GGUF", "Qwen3-8B-Q8_0.gguf"]);
  assert.deepEqual(pick("qwen3:0.6b"), ["Qwen/Qwen3-0.6B-GGUF", "Qwen3-0.6B-Q8_0.gguf"], "only Q8_0 exists there");
  assert.deepEqual(pick("qwen3:8b-mlx"), ["mlx-community/Qwen3-8B-4bit", undefined]);
  assert.deepEqual(pick("qwen3:8b-mlx-8bit"), ["mlx-community/Qwen3-8B-8bit", undefined]);
  assert.deepEqual(pick("qwen3:8b", { quant: "Q6_K" }), ["Qwen/Qwen3-8B-GGUF", "Qwen3-8B-Q6_K.gguf"]);
  assert.deepEqual(pick("qwen3:235b"), ["mlx-community/Qwen3-235B-A22B-Instruct-2507-4bit", undefined], "MLX-only entry");
  assert.throws(() => parsePullRef("qwen3:8b-q2_k"), (e) => isTesseraError(e) && /variants: .*qwen3:8b-q8_0/.test(e.message));
  assert.throws(() => parsePullRef("nosuchmodel:1b"), (e) => isTesseraError(e) && /not in the catalog/.test(e.message));
  assert.ok(variantNames(findCatalogEntry("qwen3:8b")!).includes("qwen3:8b-mlx-8bit"));
});

test("hub and URL references parse as Ollama and browsers write them", () => {
  assert.deepEqual(parsePullRef("hf.co/bartowski/Qwen_Qwen3-8B-GGUF:Q4_K_M"), { kind: "hf", repo: "bartowski/Qwen_Qwen3-8B-GGUF", revision: "main", tag: "Q4_K_M" });
  assert.deepEqual(parsePullRef("huggingface.co/org/repo"), { kind: "hf", repo: "org/repo", revision: "main" });
  assert.deepEqual(parsePullRef("org/repo:model.Q8_0.gguf"), { kind: "hf", repo: "org/repo", revision: "main", tag: "model.Q8_0.gguf" });
  assert.deepEqual(parsePullRef("https://huggingface.co/Qwen/Qwen3-8B-GGUF/resolve/main/Qwen3-8B-Q8_0.gguf?download=true"), {
    kind: "hf",
    repo: "Qwen/Qwen3-8B-GGUF",
    revision: "main",
    tag: "Qwen3-8B-Q8_0.gguf",
  });
  assert.deepEqual(parsePullRef("https://huggingface.co/mlx-community/Qwen3-8B-4bit"), { kind: "hf", repo: "mlx-community/Qwen3-8B-4bit", revision: "main" });
  assert.deepEqual(parsePullRef("http://10.0.0.5:8000/models/x.gguf"), { kind: "url", url: "http://10.0.0.5:8000/models/x.gguf" });
  assert.throws(() => parsePullRef("hf.co/not a repo"), isTesseraError);
  assert.throws(() => parsePullRef("  "), isTesseraError);
});

test("a tag picks one GGUF file of a repo", () => {
  const files = ["README.md", "Qwen3-8B-Q4_K_M.gguf", "Qwen3-8B-Q8_0.gguf", "Qwen3-8B-Q4_K_S.gguf", "mmproj-Qwen3-8B-f16.gguf", "params"];
  assert.equal(pickGgufFile(files, "Q8_0", "r"), "Qwen3-8B-Q8_0.gguf");
  assert.equal(pickGgufFile(files, "q4_k_m", "r"), "Qwen3-8B-Q4_K_M.gguf", "case-insensitive");
  assert.equal(pickGgufFile(files, undefined, "r"), "Qwen3-8B-Q4_K_M.gguf", "Q4_K_M by default");
  assert.equal(pickGgufFile(files, "Qwen3-8B-Q4_K_S.gguf", "r"), "Qwen3-8B-Q4_K_S.gguf", "an exact name");
  assert.equal(pickGgufFile(["m.Q6_K.gguf"], undefined, "r"), "m.Q6_K.gguf", "the only GGUF file");
  assert.equal(pickGgufFile(["config.json", "model.safetensors"], undefined, "r"), undefined, "no GGUF: a folder repo");
  assert.throws(() => pickGgufFile(files, "Q2_K", "r"), (e) => isTesseraError(e) && /it has: .*Q8_0/.test(e.message));
  assert.throws(() => pickGgufFile(["a-Q8_0.gguf", "b-Q8_0.gguf"], "Q8_0", "r"), (e) => isTesseraError(e) && /matches 2 files/.test(e.message));
  assert.throws(() => pickGgufFile(["Q4_K_M/x-Q4_K_M-00001-of-00003.gguf", "Q4_K_M/x-Q4_K_M-00002-of-00003.gguf"], "Q4_K_M", "r"), (e) => isTesseraError(e) && /split GGUF/.test(e.message));
});

function pick(ref: string, choice = {}): [string, string | undefined] {
  const r = parsePullRef(ref, choice);
  assert.equal(r.kind, "hf");
  if (r.kind !== "hf") throw new Error("unreachable");
  return [r.repo, r.tag];
}
