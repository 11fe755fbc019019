import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { TesseraError } from "../../errors.js";
import { AbortedError, abortError, httpGet, parseContentRange, readBody } from "./http.js";
import { mergeRanges, subtractRanges, type ByteRange } from "./ranges.js";

/**
 * Moving one file's bytes from a list of sources (peers first, the hub last) onto disk.
 *
 * downloadFile: the whole file into `<dest>.partial`, resumed from whatever the partial holds (a
 * Range request from its length; a server answering 416 because the partial is already whole
 * counts as done, one answering 200 to a Range request restarts it), hashed as it is written and
 * checked against the hub's sha256 (or a small file's git blob sha1); a mismatch throws the
 * partial away and fetches the file once more, a second mismatch fails. Renamed to `dest` only
 * when verified. Transient failures (connection lost, 5xx) retry the same source with backoff,
 * resuming; a source that refuses (4xx) or keeps failing hands over to the next one.
 *
 * downloadRanges: only some byte ranges of a file into a sparse file of its full size (a shard);
 * ranges already held (from an earlier run) are skipped. There is no hash for parts of a file, so
 * ranges rely on the transport (TLS to the hub, TCP from authenticated peers).
 */
export interface ByteSource {
  /** Shown in progress: "hub", "url", "peer <node id>". */
  label: string;
  url: string;
  /** Headers for the source's own origin only (never for a redirect target); a function is asked anew for every request (signatures with a time). */
  auth?: Record<string, string> | (() => Record<string, string>);
  /** Turns an HTTP error status into the error a user should see. */
  explain?: (status: number, headers: Record<string, string | string[] | undefined>) => Error | undefined;
}

export interface TransferEvents {
  /** Bytes found on disk from an earlier run. */
  resumed?(n: number): void;
  /** Bytes received and written, and from which source. */
  received?(n: number, from: string): void;
  /** Bytes thrown away (a corrupt file restarted, a source that ignored Range). */
  discarded?(n: number, why: string): void;
  /** Moved to another source after this one failed. */
  switched?(from: string, to: string, why: string): void;
}

export interface FileJob {
  dest: string;
  /** Expected size, or -1 when unknown (a plain URL without a hub's file list). */
  size: number;
  sha256?: string;
  gitSha1?: string;
  sources: ByteSource[];
}

export interface TransferOptions {
  signal?: AbortSignal;
  /** Retries per source after transient failures (default 3). */
  retries?: number;
  /** First backoff; doubles each retry (default 1000 ms). */
  backoffMs?: number;
}

/** A source answered in a way retrying cannot fix: go to the next source. */
class SourceRefused extends Error {}

export async function downloadFile(job: FileJob, events: TransferEvents = {}, o: TransferOptions = {}): Promise<void> {
  if (job.sources.length === 0) throw new TesseraError("no source to download from (offline and no peer holds it?)", job.dest);
  const existing = await stat(job.dest).catch(() => undefined);
  if (existing?.isFile() && (job.size < 0 || existing.size === job.size)) {
    events.resumed?.(existing.size);
    return;
  }
  const partial = `${job.dest}.partial`;
  const fh = await open(partial, "a+").then(async (h) => (await h.close(), open(partial, "r+")));
  try {
    const state: WholeState = { size: job.size, have: (await fh.stat()).size, hash: newHash(job), fresh: () => newHash(job) };
    if (state.size >= 0 && state.have > state.size) {
      await fh.truncate(0);
      state.have = 0;
    }
    if (state.have > 0) {
      await hashPrefix(partial, state.have, state.hash);
      events.resumed?.(state.have);
    }
    let refetched = false;
    for (;;) {
      await fetchWhole(fh, job, state, events, o);
      const got = digestOf(job, state.hash);
      if (got.expected === undefined || got.actual === got.expected) break;
      if (refetched) throw new TesseraError(`${got.kind} still does not match after fetching the file again (expected ${got.expected}, got ${got.actual}); the source is corrupt`, job.dest);
      events.discarded?.(state.have, `${got.kind} mismatch (expected ${got.expected.slice(0, 12)}…, got ${got.actual.slice(0, 12)}…): fetching it again`);
      refetched = true;
      await fh.truncate(0);
      state.have = 0;
      state.hash = state.fresh();
    }
  } finally {
    await fh.close();
  }
  await rename(partial, job.dest);
}

function newHash(job: FileJob): Hash {
  if (job.sha256) return createHash("sha256");
  const h = createHash("sha1");
  if (job.gitSha1 && job.size >= 0) h.update(`blob ${job.size}\0`);
  return h;
}

function digestOf(job: FileJob, hash: Hash): { kind: string; expected?: string; actual: string } {
  const actual = hash.digest("hex");
  if (job.sha256) return { kind: "sha256", expected: job.sha256.toLowerCase(), actual };
  if (job.gitSha1 && job.size >= 0) return { kind: "git blob sha1", expected: job.gitSha1.toLowerCase(), actual };
  return { kind: "none", actual };
}

async function hashPrefix(path: string, n: number, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path, { start: 0, end: n - 1, highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
}

interface WholeState {
  size: number;
  have: number;
  hash: Hash;
  fresh(): Hash;
}

async function fetchWhole(fh: FileHandle, job: FileJob, state: WholeState, events: TransferEvents, o: TransferOptions): Promise<void> {
  let lastError: Error | undefined;
  for (let s = 0; s < job.sources.length; s++) {
    const source = job.sources[s]!;
    if (s > 0) events.switched?.(job.sources[s - 1]!.label, source.label, lastError?.message ?? "");
    for (let attempt = 0; attempt <= (o.retries ?? 3); attempt++) {
      if (o.signal?.aborted) throw abortError(o.signal);
      try {
        await fetchFrom(fh, source, state, events, o.signal);
        return;
      } catch (e) {
        if (e instanceof AbortedError || o.signal?.aborted) throw o.signal ? abortError(o.signal) : e;
        if (e instanceof TesseraError) throw e;
        lastError = e as Error;
        if (e instanceof SourceRefused) break;
        await sleep((o.backoffMs ?? 1000) * 2 ** attempt, o.signal);
      }
    }
  }
  throw new TesseraError(`download failed from every source: ${lastError?.message ?? "unknown error"}`, job.dest);
}

async function fetchFrom(fh: FileHandle, source: ByteSource, state: WholeState, events: TransferEvents, signal?: AbortSignal): Promise<void> {
  if (state.size >= 0 && state.have === state.size) return; // whole already (resumed): nothing to ask for
  const from = state.have;
  const { res } = await httpGet(source.url, { auth: authOf(source), headers: from > 0 ? { range: `bytes=${from}-` } : {}, signal });
  const status = res.statusCode ?? 0;
  if (status === 416) {
    res.resume();
    // the range starts at or past the end: we already have the whole file (exo's #1914 failed here)
    const total = parseContentRange(res.headers["content-range"] as string | undefined)?.total ?? state.size;
    if (total >= 0 && from >= total) {
      if (from > total) throw new SourceRefused(`the partial file (${from} bytes) is longer than the file (${total})`);
      state.size = total;
      return;
    }
    throw new SourceRefused(`${source.label} refused the range from byte ${from} (HTTP 416)`);
  }
  if (status !== 200 && status !== 206) {
    const body = await readBody(res, 64 * 1024).catch(() => "");
    const explained = source.explain?.(status, res.headers);
    if (explained) throw explained;
    const why = `${source.label} answered HTTP ${status}${body ? `: ${body.slice(0, 200)}` : ""}`;
    if (status >= 500 || status === 429) throw new Error(why);
    throw new SourceRefused(why);
  }
  let at = from;
  if (status === 206) {
    const cr = parseContentRange(res.headers["content-range"] as string | undefined);
    if (cr?.start !== from) {
      res.destroy();
      throw new SourceRefused(`${source.label} sent bytes from ${cr?.start ?? "?"} when asked for ${from}`);
    }
    if (state.size < 0 && cr.total !== undefined) state.size = cr.total;
  } else {
    // 200: the whole file, whatever we asked for: take it from byte 0
    if (from > 0) {
      events.discarded?.(from, `${source.label} ignored the Range request: starting over`);
      await fh.truncate(0);
      state.hash = state.fresh();
      state.have = 0;
      at = 0;
    }
    const length = Number(res.headers["content-length"]);
    if (state.size < 0 && Number.isSafeInteger(length)) state.size = length;
  }
  for await (const chunk of res) {
    const buf = chunk as Buffer;
    if (state.size >= 0 && at + buf.length > state.size) {
      res.destroy();
      throw new SourceRefused(`${source.label} sent more than the file's ${state.size} bytes`);
    }
    await writeAll(fh, buf, at);
    state.hash.update(buf);
    at += buf.length;
    state.have = at;
    events.received?.(buf.length, source.label);
  }
  if (state.size >= 0 && at < state.size) throw new Error(`${source.label}: the transfer ended at byte ${at} of ${state.size}`);
  if (state.size < 0) state.size = at;
}

async function writeAll(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

function authOf(s: ByteSource): Record<string, string> | undefined {
  return typeof s.auth === "function" ? s.auth() : s.auth;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(t), reject(abortError(signal))), { once: true });
  });
}

// ---- shards: byte ranges into a sparse file ----

export interface RangeJob {
  dest: string;
  size: number;
  ranges: ByteRange[];
  /** Ranges already on disk (from the manifest of an earlier run). */
  held: ByteRange[];
  sources: ByteSource[];
}

/**
 * Fetches the ranges not yet held into `dest` (created sparse at `size`), `parallel` requests at a
 * time, calling `onHeld` with the merged held list after each range, so the caller can persist it.
 */
export async function downloadRanges(job: RangeJob, events: TransferEvents & { onHeld?(held: ByteRange[]): Promise<void> } = {}, o: TransferOptions & { parallel?: number } = {}): Promise<ByteRange[]> {
  if (job.sources.length === 0) throw new TesseraError("no source to fetch the shard from (no peer holds it and the hub is not available)", job.dest);
  const fh = await open(job.dest, "a+").then(async (h) => (await h.close(), open(job.dest, "r+")));
  let held = mergeRanges(job.held);
  try {
    if ((await fh.stat()).size !== job.size) await fh.truncate(job.size);
    const todo = subtractRanges(job.ranges, held);
    const already = rangeTotal(mergeRanges(job.ranges)) - rangeTotal(todo);
    if (already > 0) events.resumed?.(already);
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const r = todo[next++]!;
        await fetchRange(fh, job, r, events, o);
        held = mergeRanges([...held, r]);
        await events.onHeld?.(held);
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.parallel ?? 4, todo.length) }, worker));
  } finally {
    await fh.close();
  }
  return held;
}

function rangeTotal(r: ByteRange[]): number {
  return r.reduce((s, [a, b]) => s + b - a, 0);
}

async function fetchRange(fh: FileHandle, job: RangeJob, [a, b]: ByteRange, events: TransferEvents, o: TransferOptions): Promise<void> {
  let lastError: Error | undefined;
  for (let s = 0; s < job.sources.length; s++) {
    const source = job.sources[s]!;
    if (s > 0) events.switched?.(job.sources[s - 1]!.label, source.label, lastError?.message ?? "");
    let at = a;
    for (let attempt = 0; attempt <= (o.retries ?? 3); attempt++) {
      if (o.signal?.aborted) throw abortError(o.signal);
      try {
        at = await fetchRangeFrom(fh, source, at, b, events, o.signal);
        return;
      } catch (e) {
        if (o.signal?.aborted) throw abortError(o.signal);
        if (e instanceof TesseraError) throw e;
        const p = e as Error & { at?: number };
        if (typeof p.at === "number") at = p.at;
        lastError = p;
        if (e instanceof SourceRefused) break;
        await sleep((o.backoffMs ?? 1000) * 2 ** attempt, o.signal);
      }
    }
  }
  throw new TesseraError(`could not fetch bytes ${a}..${b} from any source: ${lastError?.message ?? "unknown error"}`, job.dest);
}

async function fetchRangeFrom(fh: FileHandle, source: ByteSource, a: number, b: number, events: TransferEvents, signal?: AbortSignal): Promise<number> {
  const { res } = await httpGet(source.url, { auth: authOf(source), headers: { range: `bytes=${a}-${b - 1}` }, signal });
  const status = res.statusCode ?? 0;
  if (status !== 206) {
    const body = await readBody(res, 64 * 1024).catch(() => "");
    const explained = source.explain?.(status, res.headers);
    if (explained) throw explained;
    const why = `${source.label} answered HTTP ${status} to a range request${body ? `: ${body.slice(0, 200)}` : ""}`;
    if (status >= 500 || status === 429) throw new Error(why);
    throw new SourceRefused(why);
  }
  const cr = parseContentRange(res.headers["content-range"] as string | undefined);
  if (cr?.start !== a || cr.end !== b) {
    res.destroy();
    throw new SourceRefused(`${source.label} sent bytes ${cr?.start}..${cr?.end} when asked for ${a}..${b}`);
  }
  let at = a;
  try {
    for await (const chunk of res) {
      const buf = chunk as Buffer;
      if (at + buf.length > b) throw new SourceRefused(`${source.label} sent more than asked`);
      await writeAll(fh, buf, at);
      at += buf.length;
      events.received?.(buf.length, source.label);
    }
  } catch (e) {
    throw Object.assign(e as Error, { at });
  }
  if (at < b) throw Object.assign(new Error(`${source.label}: the range ended at byte ${at} of ${b}`), { at });
  return at;
}

/** Removes a file and its partial, if there. */
export async function removeDownload(dest: string): Promise<void> {
  await rm(dest, { force: true });
  await rm(`${dest}.partial`, { force: true });
}
