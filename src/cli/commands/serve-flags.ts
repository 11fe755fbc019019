import { existsSync } from "node:fs";
import { parseKeepAlive } from "../../api/http/duration.js";
import { DEFAULT_MAX_QUEUED } from "../../inference/local-models.js";
import { DEFAULT_PARALLEL } from "../../parallel-defaults.js";
import { flag } from "../flags.js";

// `tessera start` flags for serving models: which models, names, limits, keys.

export const SERVE_FLAGS = {
  model: flag.list({ metavar: "PATH", help: "serve this model file or folder; its id is the name without extension; loaded by its first request", check: (p) => (existsSync(p) ? undefined : "an existing file or folder") }),
  ctx: flag.int({ min: 16, help: "context length (KV cache tokens) of served models", defaultText: "the model's, at most 4096" }),
  "api-key": flag.string({
    metavar: "KEY",
    help: "require this key on every route but /healthz and the dashboard ('Authorization: Bearer KEY' or 'x-api-key: KEY')",
    defaultText: "none; in secret mode a generated key for callers on other machines",
  }),
  "default-model": flag.string({ metavar: "ID", help: "the model that claude-*, gpt-*, o1... names mean", defaultText: "the first --model" }),
  alias: flag.list({ metavar: "NAME=ID", help: "another name for a model", check: (a) => (/^[^=\s]+=[^=\s]+$/.test(a) ? undefined : "NAME=ID") }),
  "no-auto-launch": flag.bool({ help: "never load a model for a request: 503 with Retry-After until it is loaded" }),
  "max-queue": flag.int({ min: 0, default: DEFAULT_MAX_QUEUED, help: "requests that may wait per model before 429" }),
  parallel: flag.int({ min: 1, max: 256, default: DEFAULT_PARALLEL, help: "requests a model decodes together (KV slots of --ctx each; fewer when memory is short)" }),
  "keep-alive": flag.string({
    metavar: "D",
    help: "unload an idle model after D (5m, 1h; -1: never)",
    defaultText: "keep it loaded",
    check: (v) => (parseKeepAlive(v) === undefined ? "a duration such as 5m, 1h or -1 (forever)" : null),
  }),
};

export interface ServeFlags {
  modelPaths: string[];
  contextLength?: number;
  apiKey?: string;
  defaultModel?: string;
  aliases: Record<string, string>;
  autoLaunch: boolean;
  maxQueued: number;
  keepAliveMs: number;
  /** Sequences a served model decodes together (engine KV slots). */
  parallel: number;
}

export function serveFlags(values: {
  model: string[];
  ctx?: number;
  "api-key"?: string;
  "default-model"?: string;
  alias: string[];
  "no-auto-launch": boolean;
  "max-queue": number;
  "keep-alive"?: string;
  parallel: number;
}): ServeFlags {
  const aliases = Object.fromEntries(values.alias.map((a) => a.split("=") as [string, string]));
  return {
    modelPaths: values.model,
    contextLength: values.ctx,
    apiKey: values["api-key"],
    defaultModel: values["default-model"],
    aliases,
    autoLaunch: !values["no-auto-launch"],
    maxQueued: values["max-queue"],
    parallel: values.parallel,
    keepAliveMs: values["keep-alive"] === undefined ? -1 : parseKeepAlive(values["keep-alive"])!,
  };
}
