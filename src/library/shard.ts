import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { TesseraError } from "../errors.js";
import type { HubClient } from "../models/download/hub.js";
import { folderName, ownSources } from "../models/download/pull.js";
import { mergeRanges, rangeBytes, type ByteRange } from "../models/download/ranges.js";
import { downloadRanges, type ByteSource } from "../models/download/transfer.js";
import { readPullManifest, writePullManifest, type PullManifest } from "../models/registry/manifest.js";
import type { ClusterState } from "../cluster/state.js";
import { resolveModel } from "./cluster-models.js";
import { rankRanges, readTable, type RankPart, type RankTable } from "./shard-ranges.js";
import { peerSources } from "./peer-files.js";

/**
 * Getting one rank's part of a GGUF model onto this node before its runner starts: the function the
 * instances code calls (through ModelLibrary.fetchShard).
 *
 * A node that holds the whole model uses it. Otherwise the header and tensor table come first (a
 * growing prefix until the table parses within the bytes fetched), then exactly the byte ranges the
 * rank reads (models/download/ranges.ts: its layers; under tensor parallelism its rows/columns; the
 * embedding on the first stage, lm_head on the last) land in a sparse file of the full size under
 * models/<id>/, whose manifest (state "shard") records the ranges held, so a restart fetches only
 * what is missing and the registry lists the node as holding a shard. The bytes come from peers
 * holding the model (best link first) and, when a holder knows the repo it came from, the hub last.
 */
export interface ShardRequest extends RankPart {
  /** The model: id, a holder's name, or digest. Layers [a, a]: the header only (a driver's tokenizer, a placement view). */
  model: string;
}

export interface ShardResult {
  /** What the runner opens. */
  path: string;
  /** Bytes transferred for this request (0 when everything was already here). */
  fetchedBytes: number;
  /** The whole model was on this node. */
  whole: boolean;
}

export interface ShardContext {
  modelsDir: string;
  self: string;
  key: Buffer;
  hub: HubClient;
  state(): ClusterState;
  /** A complete local copy of that digest, if any. */
  localPath(digest: string): string | undefined;
  changed(): Promise<unknown>;
  signal?: AbortSignal;
}

const FIRST_PREFIX = 1 << 20;

export async function fetchShard(ctx: ShardContext, req: ShardRequest): Promise<ShardResult> {
  const state = ctx.state();
  const model = resolveModel(state, req.model);
  if (!model) throw new TesseraError(`no node in the cluster holds a model '${req.model}'`);
  const local = ctx.localPath(model.digest);
  if (local) return { path: local, fetchedBytes: 0, whole: true };
  if (model.format !== "gguf" || model.files.length !== 1) {
    throw new TesseraError(`${model.id} is a ${model.format} folder: shards are fetched by byte range from GGUF files only; pull the whole model instead`);
  }
  const file = model.files[0]!;
  const dir = join(ctx.modelsDir, folderName(model.id));
  const dest = join(dir, file.name);
  await mkdir(dir, { recursive: true });
  const previous = await readPullManifest(dir);
  let held: ByteRange[] = previous?.state === "shard" && previous.files[0]?.name === file.name ? mergeRanges(previous.ranges?.[file.name] ?? []) : [];
  const manifest: PullManifest = {
    version: 1,
    name: model.id,
    state: "shard",
    model: req.model,
    source: model.origin ? { kind: "hf", endpoint: ctx.hub.opts.endpoint, ...model.origin } : { kind: "peer", node: model.holders[0]!.node, digest: model.digest },
    files: [{ name: file.name, size: file.bytes, ...(file.sha256 ? { sha256: file.sha256 } : {}) }],
    digest: model.digest,
  };
  // parallel range fetches report in any order: writes go one after another, the last one wins
  let saving = Promise.resolve();
  const save = (h: ByteRange[]) => (saving = saving.then(() => writePullManifest(dir, { ...manifest, ranges: { [file.name]: h } })));
  const sources: ByteSource[] = [
    ...peerSources(state, ctx.self, { name: file.name, size: file.bytes, digest: model.digest }, ctx.key),
    ...(model.origin ? ownSources({ source: manifest.source }, manifest.files[0]!, ctx.hub) : []),
  ];
  let fetched = 0;
  const events = { received: (n: number) => void (fetched += n), onHeld: save };
  const job = (ranges: ByteRange[]) => downloadRanges({ dest, size: file.bytes, ranges, held, sources }, events, { signal: ctx.signal });

  // header and tensor table: grow the prefix until the table parses inside it
  let table: RankTable | undefined;
  for (let prefix = Math.min(FIRST_PREFIX, file.bytes); !table; prefix = Math.min(file.bytes, prefix * 4)) {
    held = await job([[0, prefix]]);
    try {
      table = await readTable(dest, file.bytes, prefix);
    } catch (e) {
      // the prefix cut the table short (zeros past it parse as nonsense): fetch more, unless it was all
      if (prefix >= file.bytes) throw e;
    }
    if (!table && prefix >= file.bytes) throw new TesseraError("the GGUF header does not parse", dest);
  }
  const ranges = await rankRanges(dest, table, req);
  held = await job(ranges);
  await save(held);
  await ctx.changed();
  if (rangeBytes(mergeRanges(ranges)) > rangeBytes(held)) throw new Error("shard incomplete after fetching");
  return { path: dest, fetchedBytes: fetched, whole: false };
}

