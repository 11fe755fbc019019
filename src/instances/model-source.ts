import { isAbsolute, resolve } from "node:path";
import { modelHeaderDigest } from "../models/header-digest.js";
import { openModel } from "../models/open.js";
import { placementModel, type PlacementModel } from "../placement/index.js";
import type { ModelRef } from "../cluster/instance-state.js";

/** A model as an instance needs it: what the user called it, where the file is, and its placement view. */
export interface ResolvedModel {
  /** The name the user gave (a path for now; a model id once the registry exists). */
  model: string;
  source: ModelRef;
  summary: PlacementModel;
}

/**
 * The one place where a model name becomes a file. For now `idOrPath` is a path that every node
 * holds (a relative path is taken from this node's working directory); the models registry will
 * map its ids to paths and digests here. Reads only the header: the file's digest (checked by every
 * runner before it loads) and the placement view. Throws TesseraError for a missing or unreadable model.
 */
export async function resolveModelSource(idOrPath: string): Promise<ResolvedModel> {
  const path = isAbsolute(idOrPath) ? idOrPath : resolve(idOrPath);
  const source = await openModel(path);
  try {
    const summary = placementModel(source, idOrPath);
    return { model: idOrPath, source: { path, digest: await modelHeaderDigest(path) }, summary };
  } finally {
    await source.close();
  }
}
