import { test } from "node:test";
import assert from "node:assert/strict";
import { availableDevices, probeDevice, resolveDevice } from "../../../src/engine/onnx/devices.js";
import { compiledProviders } from "../../../src/engine/onnx/session.js";
import { createStepper } from "../../../src/engine/session/stepper.js";
import { argmax } from "../../../src/engine/sampling/select.js";
import { isTesseraError } from "../../../src/errors.js";
import type { Device } from "../../../src/engine/types.js";
import type { ModelSource } from "../../../src/models/types.js";
import { randomSource, tinyConfig } from "./fixtures.js";

const GPUS: Device[] = ["webgpu", "cuda"];
const src = randomSource(tinyConfig("llama"), { seed: 3 });

async function greedy(s: ModelSource, device: Device, n: number): Promise<number[]> {
  const st = await createStepper(s, { threads: 1, device, contextLength: 32 });
  try {
    const out: number[] = [];
    let logits = st.forward(Int32Array.from([1, 5, 9, 2]));
    for (let i = 0; i < n; i++) {
      const t = argmax(logits, st.vocabSize);
      out.push(t);
      logits = st.forward(Int32Array.of(t));
    }
    return out;
  } finally {
    await st.dispose();
  }
}

/** A source that counts tensor reads, to show a refused device costs no weight loading. */
function counting(s: ModelSource): { source: ModelSource; reads: () => number } {
  let reads = 0;
  const source = { ...s, read: (...a: Parameters<ModelSource["read"]>) => (reads++, s.read(...a)) };
  return { source, reads: () => reads };
}

test("the devices listed are exactly those whose probe ran and matched the CPU", () => {
  const listed = availableDevices();
  assert.equal(listed[0], "cpu");
  for (const d of GPUS) assert.equal(listed.includes(d), probeDevice(d).ok, `${d}: ${JSON.stringify(probeDevice(d))}`);
  // onnxruntime-node names both GPU providers in its Linux build whether or not they can start, so a
  // list taken from the build alone would be wrong wherever a probe fails (control for the check above)
  if (process.platform === "linux" && process.arch === "x64") assert.deepEqual(compiledProviders(), ["cpu", "webgpu", "cuda"]);
});

test("auto picks a device that passed its probe, the CPU when none did", () => {
  const { device, why } = resolveDevice("auto");
  assert.ok(availableDevices().includes(device));
  if (availableDevices().length === 1) {
    assert.equal(device, "cpu");
    for (const d of GPUS) assert.match(why, new RegExp(`${d}: `));
  } else {
    assert.notEqual(device, "cpu");
  }
});

for (const d of GPUS) {
  test(`${d}: greedy tokens equal the CPU's, or it is refused with a clear error before loading`, async () => {
    const want = await greedy(src, "cpu", 12);
    const probe = probeDevice(d);
    if (probe.ok) {
      assert.deepEqual(await greedy(src, d, 12), want);
      return;
    }
    const { source, reads } = counting(src);
    await assert.rejects(
      createStepper(source, { device: d, threads: 1 }),
      (e) => isTesseraError(e) && e.message.startsWith(`--device: cannot run on ${d}: `) && e.message.includes(probe.reason),
    );
    assert.equal(reads(), 0, "no weight was read for a device that cannot run");
    // control: the same source on the CPU does read weights, so the count can see a load
    await greedy(source, "cpu", 1);
    assert.ok(reads() > 0);
  });
}
