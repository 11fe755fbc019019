import { test } from "node:test";
import assert from "node:assert/strict";
import { ModelRouter } from "../../../src/inference/router.js";
import { InferenceError } from "../../../src/inference/errors.js";
import type { ModelBackends, ModelCard } from "../../../src/inference/service.js";

// Routing decisions over backends that only describe themselves (their cards); which one was
// picked is what the test observes.
function place(node: string, cards: Partial<ModelCard>[]): ModelBackends {
  const full = cards.map((c) => ({ node, state: "ready", queued: 0, running: 0, id: "m", ...c }) as ModelCard);
  const refuse = () => Promise.reject(new Error("not called in this test"));
  return { node, models: () => full, generate: refuse, countTokens: refuse, load: refuse, unload: refuse };
}

const kindOf = (e: unknown) => (e instanceof InferenceError ? e.kind : String(e));

test("names: ids, id:latest, aliases, vendor names to the default model; anything else is unknown", () => {
  const r = new ModelRouter([place("a", [{ id: "qwen3-tiny" }, { id: "llama" }])], { node: "a", aliases: { fast: "llama" }, defaultModel: "qwen3-tiny" });
  assert.equal(r.resolveName("llama"), "llama");
  assert.equal(r.resolveName("llama:latest"), "llama");
  assert.equal(r.resolveName("llama:7b"), undefined);
  assert.equal(r.resolveName("fast"), "llama");
  assert.equal(r.resolveName("claude-sonnet-4-5-20250929"), "qwen3-tiny");
  assert.equal(r.resolveName("gpt-4o-mini"), "qwen3-tiny");
  assert.equal(r.resolveName("o3"), "qwen3-tiny");
  assert.equal(r.resolveName("gpt5"), undefined);
  assert.equal(r.resolveName("mistral"), undefined);
  assert.equal(r.resolveName(""), undefined);
  const onlyOne = new ModelRouter([place("a", [{ id: "llama" }])], { node: "a" });
  assert.equal(onlyOne.resolveName("claude-3-haiku"), "llama");
  const noDefault = new ModelRouter([place("a", [{ id: "llama" }, { id: "qwen" }])], { node: "a" });
  assert.equal(noDefault.resolveName("claude-3-haiku"), undefined);
});

test("a request goes to a ready place with the least load, this node first on a tie", () => {
  const here = place("a", [{ queued: 1, running: 1 }]);
  const there = place("b", [{ queued: 0, running: 1 }]);
  const idle = place("c", [{ state: "unloaded" }]);
  assert.equal(new ModelRouter([here, there, idle], { node: "a" }).pick("m", false), there);
  const tieHere = place("a", [{ running: 1 }]);
  assert.equal(new ModelRouter([there, tieHere], { node: "a" }).pick("m", false), tieHere);
  assert.equal(new ModelRouter([idle, place("d", [{ state: "failed" }])], { node: "a" }).pick("m", false), idle);
  assert.throws(() => new ModelRouter([here], { node: "a" }).pick("other", false), (e: unknown) => kindOf(e) === "not_found");
});

test("with auto-launch off, a model that is not running is unavailable (retry later) unless loaded explicitly", () => {
  const idle = place("a", [{ state: "unloaded" }]);
  const r = new ModelRouter([idle], { node: "a", autoLaunch: false });
  assert.throws(() => r.pick("m", false), (e: unknown) => kindOf(e) === "unavailable" && (e as InferenceError).retryAfterS! > 0);
  assert.equal(r.pick("m", true), idle);
  assert.equal(new ModelRouter([place("a", [{ state: "loading" }])], { node: "a", autoLaunch: false }).pick("m", false).node, "a");
  assert.equal(new ModelRouter([idle], { node: "a" }).pick("m", false), idle);
});
