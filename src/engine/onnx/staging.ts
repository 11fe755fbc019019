import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TesseraError } from "../../errors.js";
import { isProcessAlive } from "../../process-alive.js";
import type { GraphBuilder } from "./builder.js";
import { SyncSession, type SessionSettings } from "./session.js";
import { WeightFile } from "./weight-file.js";

/**
 * Where a graph's converted weights wait for onnxruntime while its session is created.
 *
 * Measured (ORT 1.30 CPU, synthetic 1b llama Q4_0: 621 MB of GGUF weights + 22 MB KV = 614 MiB,
 * 1 thread, ctx 336, MALLOC_MMAP_THRESHOLD_=4194304; bench/engine/memory-options.ts,
 * bench/results/engine-memory-2026-11-26-staging.json):
 *
 *   staging  peak RSS        steady RSS      decode (interleaved)   logits
 *   memory   1737 MiB 2.83×  1211 MiB 1.97×  20.0 tok/s             reference
 *   disk     1116 MiB 1.82×  1015 MiB 1.65×  21.0 tok/s             bit-identical
 *
 * - What onnxruntime keeps per Q4_0 element (block 32), however the bytes arrive: the
 *   MatMulNBits int8 pre-pack (0.5 B of 4-bit data plus a float scale and a float block sum per
 *   32: ≈0.73–0.75 B) and the scales initializer it does not release after packing (0.125 B), in
 *   all ≈0.87 B, 1.55× the GGUF's 0.5625 B. That is the floor while MatMulNBits runs with
 *   accuracy_level 4; `session.disable_prepacking` keeps 0.625 B but decodes ~450× slower, and
 *   the arena / device-allocator options change nothing.
 * - In memory (`externalData`): onnxruntime reads our blobs during create and never after (test
 *   weight-lifetime), but all converted blobs (1.04× the GGUF bytes) coexist with its packed
 *   copies, and glibc keeps ~260 MiB of the freed smaller ones in its heap afterwards.
 * - On disk: the builder appends each blob to one file as the layer is converted, so JS holds
 *   about one layer (the build phase stays under ~220 MiB); onnxruntime maps the file (offsets
 *   aligned, see weight-file.ts), packs, and unmaps what it packed (peak only ~35 MiB over its
 *   final size). The unreleased scales stay mapped as clean file pages the kernel may drop.
 *   Session 1's "file-backed decodes 2× slower" did not reproduce: same graph, same kernels, and
 *   equal decode speed in interleaved runs (1 thread: 21.0 vs 20.0 tok/s, 2 threads: within noise).
 * - Several sessions of a few layers each (pipeline shards in one process, in memory) cut the peak
 *   less (split in 4: 1307 MiB) and change the logits slightly at the boundaries; not used.
 *
 * Deleting the files right after create is fine on Linux and macOS (mappings keep the pages);
 * where it fails (Windows keeps mapped files) the directory is left and swept by a later process.
 */
export interface StagingOptions {
  /** "auto" (default): disk when the graph's weights are large and a disk directory has room. */
  mode?: "auto" | "disk" | "memory";
  /** Directories to try, in order (default: the OS temp dir). RAM-backed ones are skipped. */
  dirs?: string[];
}

/** Below this many weight bytes the peak does not matter: stay in memory (no disk I/O). */
export const DISK_STAGING_MIN_BYTES = 64 * 1024 * 1024;
const RAM_FS = new Set([0x01021994 /* tmpfs */, 0x858458f6 /* ramfs */]);
const PREFIX = "tessera-stage-";

/** One graph's staging: call attach() right after creating the builder, then createSession(). */
export class WeightStaging {
  private constructor(
    readonly dir: string | undefined,
    private readonly file: WeightFile | undefined,
  ) {}

  /** Decides memory or disk for a graph of about `weightBytes` (stored bytes of its weights). */
  static open(weightBytes: number, opts: StagingOptions = {}): WeightStaging {
    const mode = opts.mode ?? "auto";
    if (mode === "memory" || (mode === "auto" && weightBytes < DISK_STAGING_MIN_BYTES)) return new WeightStaging(undefined, undefined);
    const dirs = opts.dirs ?? [tmpdir()];
    // Converted weights are up to ~1.2× the stored bytes (float scales, alignment); keep a margin.
    const need = weightBytes * 1.25 + 256 * 1024 * 1024;
    // Asked for explicitly: the first dir, whatever it is (errors name it).
    const root = mode === "disk" ? dirs[0] : dirs.find((d) => usableForStaging(d, need));
    if (!root) return new WeightStaging(undefined, undefined);
    sweepStale(root);
    let dir: string;
    try {
      ensureDir(root);
      dir = mkdtempSync(join(root, `${PREFIX}${process.pid}-`));
    } catch (e) {
      throw new TesseraError(`cannot create a weight staging directory (${(e as NodeJS.ErrnoException).code ?? String(e)})`, root, { cause: e });
    }
    return new WeightStaging(dir, new WeightFile(join(dir, "weights.bin")));
  }

  get onDisk(): boolean {
    return this.file !== undefined;
  }

  /** Bytes written to the staging file so far (0 in memory). */
  get stagedBytes(): number {
    return this.file?.size ?? 0;
  }

  /** Sends the builder's initializers to the staging file (no-op in memory). */
  attach(graph: GraphBuilder): void {
    if (this.file) graph.stageTo(this.file, "weights.bin");
  }

  /** Creates the session from the finished graph; call discard() right after (and on any failure). */
  createSession(graph: GraphBuilder, settings: SessionSettings): SyncSession {
    if (!this.file || !this.dir) return SyncSession.create(graph.toBytes(), graph.blobs, settings);
    this.file.close();
    const model = join(this.dir, "model.onnx");
    writeFileSync(model, graph.toBytes());
    return SyncSession.createFromFile(model, settings);
  }

  /** Removes the staged files (after createSession, or when the build failed). */
  discard(): void {
    this.file?.close();
    if (this.dir) {
      try {
        rmSync(this.dir, { recursive: true, force: true });
      } catch {
        // Still mapped (Windows): a later process sweeps it.
      }
    }
  }
}

/** Creates `dir` if its parent exists (not recursively: Node's recursive mkdir can spin on /proc). */
function ensureDir(dir: string): void {
  if (!existsSync(dir)) mkdirSync(dir);
}

function usableForStaging(dir: string, needBytes: number): boolean {
  try {
    ensureDir(dir);
    const st = statfsSync(dir);
    if (RAM_FS.has(st.type)) return false;
    return st.bavail * st.bsize >= needBytes;
  } catch {
    return false;
  }
}

/** Removes staging dirs left by processes that no longer run. */
function sweepStale(root: string): void {
  let names: string[];
  try {
    names = readdirSync(root).filter((n) => n.startsWith(PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name.slice(PREFIX.length).split("-")[0]);
    if (!Number.isInteger(pid) || pid === process.pid || isProcessAlive(pid)) continue;
    rmSync(join(root, name), { recursive: true, force: true });
  }
}
