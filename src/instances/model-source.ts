import { isAbsolute, resolve } from "node:path";
import { existsSync } from "node:fs";
import { modelDigest } from "../models/registry/describe.js";
import { openModel } from "../models/open.js";
import { placementModel, type PlacementModel } from "../placement/index.js";
import type { ModelRef } from "../cluster/instance-state.js";

/** A model as an instance needs it: what the user called it, where the file is, and its placement view. */
export interface ResolvedModel {
  /** The name the user gave: a model id of the cluster's registry, or a path. */
  model: string;
  source: ModelRef;
  summary: PlacementModel;
}

/**
 * Where a node finds the bytes of a model (the node's library, src/library, implements it):
 * instances name models by registry id or digest, and each node opens its own copy.
 */
export interface ModelFiles {
  /**
   * A file on this node with the model's header (a complete copy, or the header fetched from a
   * holder): enough to place it, and for a driver's tokenizer. undefined: the cluster holds no
   * model by that name.
   */
  headerPath(ref: string): Promise<string | undefined>;
  /** The file one rank opens: a local copy, or the byte ranges of its layers (and tensor slice) fetched. */
  rankPath(source: ModelRef, part: { layers: [number, number]; tp?: { rank: number; size: number } }): Promise<string>;
}

/** Without a library: a model is a path every node holds. */
export const PATHS_ONLY: ModelFiles = {
  headerPath: async () => undefined,
  rankPath: async (source) => source.path,
};

/** A model file here with the digest an instance was placed with, when the placing node's path is one. */
export async function samePathHere(source: ModelRef): Promise<string | undefined> {
  if (!existsSync(source.path)) return undefined;
  return (await modelDigest(source.path).catch(() => undefined)) === source.digest ? source.path : undefined;
}

/**
 * The one place where a model name becomes a file: a registry id (or digest) through `files`, else
 * a path (a relative one from this node's working directory). Reads only the header: the digest
 * (checked by every runner before it loads) and the placement view. Throws TesseraError for a
 * missing or unreadable model.
 */
export async function resolveModelSource(idOrPath: string, files: ModelFiles = PATHS_ONLY): Promise<ResolvedModel> {
  const path = (await files.headerPath(idOrPath)) ?? (isAbsolute(idOrPath) ? idOrPath : resolve(idOrPath));
  const source = await openModel(path);
  try {
    const summary = placementModel(source, idOrPath);
    return { model: idOrPath, source: { path, digest: await modelDigest(path) }, summary };
  } finally {
    await source.close();
  }
}
