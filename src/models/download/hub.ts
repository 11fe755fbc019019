import { TesseraError } from "../../errors.js";
import { httpGet, readBody } from "./http.js";

/**
 * The subset of the Hugging Face hub API the downloader uses:
 *   GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true
 *       → { sha: commit, gated: false | "auto" | "manual", siblings: [{ rfilename, size, blobId,
 *           lfs?: { sha256, size, pointerSize } }] }
 *   GET {endpoint}/{repo}/resolve/{commit}/{file}   (Range; redirects to a CDN for LFS files)
 * Errors carry X-Error-Code (GatedRepo, RepoNotFound, RevisionNotFound, EntryNotFound); a 401 without
 * a code means "not found, or private / gated and no token".
 * Settings: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (sent as a bearer token to the
 * endpoint only, never to the CDN), offline (HF_HUB_OFFLINE=1 or --offline: no request at all).
 */
export interface HubOptions {
  endpoint: string;
  token?: string;
  offline: boolean;
}

export interface HubFile {
  name: string;
  size: number;
  /** sha256 of an LFS file's content. */
  sha256?: string;
  /** git blob sha1 of a small (non-LFS) file. */
  gitSha1?: string;
}

export interface RepoInfo {
  repo: string;
  /** The commit the revision resolved to; downloads use it, so a resumed file never mixes versions. */
  commit: string;
  gated: boolean;
  files: HubFile[];
}

export function hubOptionsFromEnv(env: NodeJS.ProcessEnv = process.env, offline = false): HubOptions {
  const endpoint = (env.HF_ENDPOINT || "https://huggingface.co").replace(/\/+$/, "");
  const token = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined;
  return { endpoint, token, offline: offline || env.HF_HUB_OFFLINE === "1" || env.TESSERA_OFFLINE === "1" };
}

export class HubClient {
  constructor(readonly opts: HubOptions) {}

  /** Headers only the hub's own origin gets. */
  get auth(): Record<string, string> {
    return this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {};
  }

  repoUrl(repo: string): string {
    return `${this.opts.endpoint}/${repo}`;
  }

  resolveUrl(repo: string, commit: string, file: string): string {
    return `${this.opts.endpoint}/${repo}/resolve/${encodeURIComponent(commit)}/${file.split("/").map(encodeURIComponent).join("/")}`;
  }

  checkOnline(what: string): void {
    if (this.opts.offline) throw new TesseraError(`offline (--offline or HF_HUB_OFFLINE=1): not asking the hub for ${what}`);
  }

  async repoInfo(repo: string, revision = "main", signal?: AbortSignal): Promise<RepoInfo> {
    this.checkOnline(repo);
    const url = `${this.opts.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
    let got;
    try {
      got = await httpGet(url, { auth: this.auth, signal });
    } catch (e) {
      throw new TesseraError(`cannot reach the hub at ${this.opts.endpoint} (${(e as Error).message}); use --offline to pull only from peers`, repo, { cause: e });
    }
    const { res } = got;
    const body = await readBody(res).catch(() => "");
    if ((res.statusCode ?? 0) >= 400) throw this.error(repo, res.statusCode ?? 0, res.headers["x-error-code"], res.headers["x-error-message"]);
    let json: { sha?: unknown; gated?: unknown; siblings?: unknown };
    try {
      json = JSON.parse(body) as typeof json;
    } catch {
      throw new TesseraError(`the hub's answer for ${repo} is not JSON`, url);
    }
    if (typeof json.sha !== "string" || !Array.isArray(json.siblings)) throw new TesseraError("the hub's model info has no sha or siblings", url);
    const files: HubFile[] = [];
    for (const s of json.siblings as { rfilename?: unknown; size?: unknown; blobId?: unknown; lfs?: { sha256?: unknown; size?: unknown } }[]) {
      if (typeof s.rfilename !== "string") continue;
      const size = typeof s.lfs?.size === "number" ? s.lfs.size : typeof s.size === "number" ? s.size : undefined;
      if (size === undefined) continue;
      files.push({
        name: s.rfilename,
        size,
        ...(typeof s.lfs?.sha256 === "string" ? { sha256: s.lfs.sha256 } : typeof s.blobId === "string" ? { gitSha1: s.blobId } : {}),
      });
    }
    const gated = json.gated !== undefined && json.gated !== false;
    if (gated && !this.opts.token) {
      throw new TesseraError(`${repo} is gated: accept its terms at ${this.repoUrl(repo)}, then set HF_TOKEN to a token of that account`);
    }
    return { repo, commit: json.sha, gated, files };
  }

  /** The error for a failed hub request, in words a user can act on. */
  error(repo: string, status: number, code?: string | string[], message?: string | string[]): TesseraError {
    const c = String(code ?? "");
    const m = message ? ` (${String(message)})` : "";
    if (c === "GatedRepo") {
      return new TesseraError(
        this.opts.token
          ? `${repo} is gated and HF_TOKEN has no access: accept its terms at ${this.repoUrl(repo)} with that account`
          : `${repo} is gated: accept its terms at ${this.repoUrl(repo)}, then set HF_TOKEN to a token of that account`,
      );
    }
    if (c === "RevisionNotFound") return new TesseraError(`${repo} has no such revision${m}`);
    if (c === "EntryNotFound") return new TesseraError(`${repo} has no such file${m}`);
    if (c === "RepoNotFound" || status === 401 || status === 404) {
      return new TesseraError(
        this.opts.token
          ? `${repo} was not found on ${this.opts.endpoint}, or HF_TOKEN cannot see it`
          : `${repo} was not found on ${this.opts.endpoint} (a private or gated repo needs HF_TOKEN)`,
      );
    }
    if (status === 403) return new TesseraError(`the hub refused access to ${repo}${m}`);
    if (status === 429) return new TesseraError(`the hub is rate-limiting us (HTTP 429); try again later or set HF_TOKEN`);
    return new TesseraError(`the hub answered HTTP ${status} for ${repo}${m}`);
  }
}
