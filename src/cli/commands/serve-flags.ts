import { existsSync } from "node:fs";
import { parseKeepAlive } from "../../api/http/duration.js";
import { DEFAULT_MAX_QUEUED } from "../../inference/local-models.js";
import { TesseraError } from "../../errors.js";
import { intOption } from "../args.js";

// `tessera start` flags for serving models: which models, names, limits, keys.

export const SERVE_FLAGS = {
  model: { type: "string", multiple: true },
  ctx: { type: "string" },
  "api-key": { type: "string" },
  "default-model": { type: "string" },
  alias: { type: "string", multiple: true },
  "no-auto-launch": { type: "boolean" },
  "max-queue": { type: "string" },
  "keep-alive": { type: "string" },
} as const;

export const SERVE_USAGE = `  --model PATH        serve this model file (repeatable; TESSERA_MODEL: a comma-separated list); its id is
                      the file name without extension; loaded by its first request
  --ctx N             context length (KV cache tokens) of served models (default: the model's, at most 4096)
  --api-key KEY       require this key on every route but /healthz, as 'Authorization: Bearer KEY' or
                      'x-api-key: KEY' (without it, secret mode generates one for non-loopback callers)
  --default-model ID  the model that claude-*, gpt-*, o1... names mean (default: the first --model)
  --alias NAME=ID     another name for a model (repeatable)
  --no-auto-launch    never load a model for a request: 503 with Retry-After until it is loaded
  --max-queue N       requests that may wait per model before 429 (default ${DEFAULT_MAX_QUEUED})
  --keep-alive D      unload an idle model after D (e.g. 5m, 1h; default: keep it loaded)`;

export interface ServeFlags {
  modelPaths: string[];
  contextLength?: number;
  apiKey?: string;
  defaultModel?: string;
  aliases: Record<string, string>;
  autoLaunch: boolean;
  maxQueued: number;
  keepAliveMs: number;
}

function list(v: unknown): string[] {
  if (v === undefined) return [];
  // from the environment a multiple option arrives as one string
  if (typeof v === "string") return v.split(",").map((s) => s.trim()).filter(Boolean);
  return (v as string[]).filter(Boolean);
}

export function serveFlags(values: Record<string, unknown>): ServeFlags {
  const modelPaths = list(values.model);
  for (const p of modelPaths) if (!existsSync(p)) throw new TesseraError("--model: no such file or folder", p);
  const aliases: Record<string, string> = {};
  for (const a of list(values.alias)) {
    const m = /^([^=\s]+)=([^=\s]+)$/.exec(a);
    if (!m) throw new TesseraError(`--alias wants NAME=ID, got '${a}'`);
    aliases[m[1]!] = m[2]!;
  }
  const keep = values["keep-alive"] === undefined ? -1 : parseKeepAlive(values["keep-alive"]);
  if (keep === undefined) throw new TesseraError(`--keep-alive must be a duration such as 5m, 1h or -1 (forever), got '${String(values["keep-alive"])}'`);
  const apiKey = typeof values["api-key"] === "string" && values["api-key"] !== "" ? values["api-key"] : undefined;
  return {
    modelPaths,
    contextLength: values.ctx === undefined ? undefined : intOption("ctx", values.ctx, 1, 16),
    apiKey,
    defaultModel: typeof values["default-model"] === "string" ? values["default-model"] : undefined,
    aliases,
    autoLaunch: values["no-auto-launch"] !== true,
    maxQueued: intOption("max-queue", values["max-queue"], DEFAULT_MAX_QUEUED, 0),
    keepAliveMs: keep,
  };
}
