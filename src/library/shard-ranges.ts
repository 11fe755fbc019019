import { stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { TesseraError } from "../errors.js";
import { tpSplit } from "../placement/split.js";
import { readRawHeader } from "../models/gguf/reader.js";
import { rangeBytes, shardByteRanges, subtractRanges, tpTensorSlice, type ByteRange, type TensorTable } from "../models/download/ranges.js";
import { readPullManifest } from "../models/registry/manifest.js";
import { openModel } from "../models/open.js";
import { layoutOfGgmlId } from "../models/quant/types.js";
import { RandomAccessFile } from "../models/source/random-access-file.js";
import { splitBlocks } from "../placement/shard-plan.js";
import { lmHeadRows, vocabSlices } from "../runner/stage.js";

/** The part of a GGUF model one rank reads, by byte range: what a shard fetch gets and what a runner checks it holds. */
export interface RankPart {
  /** Layers [a, b) of the rank's stage; [a, a]: the header only. */
  layers: [number, number];
  /** The rank's place in its tensor-parallel group, if the stage has more than one rank. */
  tp?: { rank: number; size: number };
}

export interface RankTable {
  table: TensorTable;
  numLayers: number;
}

/** The tensor table of a GGUF file whose first `held` bytes are on disk; undefined when it ends past them. */
export async function readTable(path: string, fileBytes: number, held = fileBytes): Promise<RankTable | undefined> {
  const raf = await RandomAccessFile.open(path);
  try {
    const h = await readRawHeader(raf);
    if (h.dataOffset > held) return undefined;
    const arch = String(h.metadata.get("general.architecture"));
    const numLayers = Number(h.metadata.get(`${arch}.block_count`));
    const tensors = h.tensors.map((t) => ({ name: t.name, offset: t.offset, shape: [...t.dims].reverse(), type: layoutOfGgmlId(t.ggmlType)?.type }));
    return { table: { fileSize: fileBytes, dataOffset: h.dataOffset, tensors }, numLayers };
  } finally {
    await raf.close();
  }
}

/** The byte ranges a rank reads (models/download/ranges.ts); none for the header only. */
export async function rankRanges(path: string, { table, numLayers }: RankTable, req: RankPart): Promise<ByteRange[]> {
  if (!Number.isInteger(numLayers) || numLayers <= 0) throw new TesseraError("the GGUF header has no block count", path);
  if (req.layers[0] === req.layers[1]) return [];
  return shardByteRanges(table, { layers: req.layers, numLayers, slice: req.tp && req.tp.size > 1 ? await rankSlice(path, req) : undefined });
}

/**
 * What a runner checks before it loads: a file in a shard folder (pull manifest "shard") holds only
 * the byte ranges its manifest lists, and reads zeros elsewhere, so a rank whose bytes are not all
 * there would compute garbage without an error. Returns how many of the bytes this rank reads are
 * missing (0 for a whole file).
 */
export async function missingShardBytes(path: string, req: RankPart): Promise<number> {
  const manifest = await readPullManifest(dirname(path));
  if (manifest?.state !== "shard") return 0;
  const held = manifest.ranges?.[basename(path)] ?? [];
  const table = await readTable(path, (await stat(path)).size);
  if (!table) throw new TesseraError("the GGUF header does not parse", path);
  return rangeBytes(subtractRanges([[0, table.table.dataOffset], ...(await rankRanges(path, table, req))], held));
}

/** The slices of a tensor-parallel rank, worked out from the (header-complete) sparse file. */
async function rankSlice(path: string, req: RankPart) {
  const source = await openModel(path);
  try {
    const cfg = source.config;
    const slice = tpSplit(cfg, req.tp!.size, splitBlocks(source))[req.tp!.rank];
    if (!slice) throw new TesseraError(`tensor-parallel rank ${req.tp!.rank} of ${req.tp!.size} does not exist`);
    const first = req.layers[0] === 0;
    const last = req.layers[1] === cfg.numLayers;
    const vocabRows = last ? vocabSlices(lmHeadRows(source), req.tp!.size)[req.tp!.rank] : undefined;
    return tpTensorSlice(slice, { vocabRows, embedding: first });
  } finally {
    await source.close();
  }
}
