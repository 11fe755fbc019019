import { existsSync } from "node:fs";
import { join } from "node:path";
import { TesseraError } from "../../errors.js";
import type { Device } from "../types.js";
import { emitLinear, rmsNorm } from "../graph/blocks.js";
import { GraphBuilder } from "./builder.js";
import { compiledProviders, SyncSession, ort } from "./session.js";

/**
 * Which execution providers really work here. onnxruntime-node's binaries list `webgpu` and `cuda`
 * whether or not a GPU adapter or the CUDA provider files exist, so a device counts as available only
 * once a probe graph (a 4-bit MatMulNBits and an RMSNorm, the engine's two commonest ops) has run on it
 * with no CPU fallback and matched the CPU's answer. Probes run once per process.
 */

export type Probe = { device: Device; ok: true; ms: number } | { device: Device; ok: false; reason: string };

/** Best first: what `--device auto` tries. */
const GPU_ORDER: Device[] = ["cuda", "webgpu"];
const probes = new Map<Device, Probe>();

const K = 64;
const N = 32;

function probeGraph(): { bytes: Uint8Array; blobs: { path: string; data: Uint8Array }[] } {
  const g = new GraphBuilder("device-probe");
  const x = g.input("x", "float32", [1, 1, K]);
  const blockSize = 32;
  const nb = K / blockSize;
  const data = new Uint8Array(N * nb * (blockSize / 2));
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + 11) & 0xff;
  const scales = Float32Array.from({ length: N * nb }, (_, i) => 0.01 + (i % 7) * 0.003);
  const y = emitLinear(g, x, { kind: "nbits", n: N, k: K, bits: 4, blockSize, data, scales }, "probe.w");
  const out = rmsNorm(g, y, Float32Array.from({ length: N }, (_, i) => 1 + i / N), 1e-6, "probe.norm");
  g.node("Identity", [out], ["y"]);
  g.output("y", "float32", [1, 1, N]);
  return { bytes: g.toBytes(), blobs: g.blobs };
}

function runProbe(device: Device): Float32Array {
  const { bytes, blobs } = probeGraph();
  const s = SyncSession.create(bytes, blobs, { device, threads: 1, quiet: true });
  try {
    const x = new ort.Tensor("float32", Float32Array.from({ length: K }, (_, i) => Math.sin(i + 1)), [1, 1, K]);
    return s.run({ x }, { y: null }).y!.data as Float32Array;
  } finally {
    s.dispose();
  }
}

/** Runs the probe on `device` (once per process) and compares it with the CPU. */
export function probeDevice(device: Device): Probe {
  const known = probes.get(device);
  if (known) return known;
  let p: Probe;
  if (device === "cpu") p = { device, ok: true, ms: 0 };
  else if (!compiledProviders().includes(device)) p = { device, ok: false, reason: `this onnxruntime build has no ${device} execution provider` };
  else if (device === "webgpu" && process.platform === "linux" && !hasVulkanLoader()) {
    // Dawn would print its own warning to stderr before failing; without the loader it cannot start anyway
    p = { device, ok: false, reason: deviceHint(device, "no Vulkan loader (libvulkan.so.1)") };
  }
  else {
    const t0 = performance.now();
    try {
      const got = runProbe(device);
      const want = runProbe("cpu");
      const err = Math.max(...Array.from(want, (w, i) => Math.abs(w - got[i]!) / Math.max(1, Math.abs(w))));
      p = err < 2e-2 ? { device, ok: true, ms: performance.now() - t0 } : { device, ok: false, reason: `its answer differs from the CPU's (relative error ${err.toExponential(2)})` };
    } catch (e) {
      const cause = (e as Error).cause instanceof Error ? ((e as Error).cause as Error) : (e as Error);
      p = { device, ok: false, reason: deviceHint(device, cause.message) };
    }
  }
  probes.set(device, p);
  return p;
}

/** Whether the Vulkan loader is where the dynamic linker looks (LD_LIBRARY_PATH, then the usual folders). */
function hasVulkanLoader(): boolean {
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean), `/usr/lib/${process.arch === "arm64" ? "aarch64" : "x86_64"}-linux-gnu`, "/usr/lib64", "/usr/lib", "/lib64", "/lib", "/usr/local/lib"];
  return dirs.some((d) => existsSync(join(d, "libvulkan.so.1")));
}

/** The CPU, then every GPU provider whose probe passed. */
export function availableDevices(): Device[] {
  return ["cpu", ...GPU_ORDER.filter((d) => probeDevice(d).ok)];
}

/** `auto` → the best device whose probe passes (the CPU when none does); any other → itself, or a clear error. */
export function resolveDevice(requested: Device | "auto"): { device: Device; why: string } {
  if (requested === "auto") {
    for (const d of GPU_ORDER) {
      const p = probeDevice(d);
      if (p.ok) return { device: d, why: `${d} passed the correctness probe` };
    }
    const why = GPU_ORDER.map((d) => `${d}: ${(probeDevice(d) as { reason: string }).reason.split(":")[0]}`).join("; ");
    return { device: "cpu", why: `no GPU provider passed its probe (${why})` };
  }
  const p = probeDevice(requested);
  if (!p.ok) throw new TesseraError(`--device: cannot run on ${requested}: ${p.reason}`);
  return { device: requested, why: "requested" };
}

/** Why a provider did not start, in a phrase, and what a user can do about it. */
function deviceHint(device: Device, message: string): string {
  const detail = message.split("\n")[0]!.slice(0, 240);
  if (device === "cuda") {
    const why = /Failed to load shared library|cannot open shared object/.test(message) ? "the CUDA provider files are not installed" : `the CUDA provider did not start (${detail})`;
    return `${why}: onnxruntime-node needs libonnxruntime_providers_cuda.so (its install script fetches it with ONNXRUNTIME_NODE_INSTALL=cuda12) and CUDA 12 with cuDNN 9 on the library path; see docs/gpu.md`;
  }
  const why = /Failed to get a WebGPU adapter/.test(message)
    ? "no WebGPU adapter was found"
    : /Vulkan loader/.test(message)
      ? "the Vulkan loader (libvulkan.so.1) is not installed"
      : `WebGPU did not start (${detail})`;
  return `${why}: it needs a GPU and its driver (Metal on macOS; Vulkan on Linux: libvulkan1 and the GPU's Vulkan driver; D3D12 on Windows); see docs/gpu.md`;
}
