// A runner process: started by the launcher with an IPC channel (see protocol.ts). It loads its
// shard, joins the world group (and its tensor group), then serves steps until the driver closes
// it. It exits when its parent goes away (IPC disconnect), so it never outlives the launcher.
import { TesseraError, isTesseraError } from "../errors.js";
import { openModel } from "../models/open.js";
import { countReads } from "../models/source/counting.js";
import { modelDigest } from "../models/registry/describe.js";
import { Group, GroupListener, Liveness, type PeerAddress } from "../transport/index.js";
import { checkPlan, describeRank, describeWorldRank, rankPlaces, splitBlocks } from "../placement/shard-plan.js";
import type { FromRunner, RunnerInit, ToRunner } from "./protocol.js";
import { serveSteps } from "./serve.js";
import { missingShardBytes } from "../library/shard-ranges.js";
import { formatBytes } from "../units.js";
import { lmHeadRows, loadStage, vocabSlices, type StageCompute } from "./stage.js";

/** All-reduces up to this size (decode steps: hidden × 4 bytes) are busy-polled; prefill waits on the event loop. */
const POLL_MAX_BYTES = 64 * 1024;
/** A tensor-group peer silent this long inside a busy-polled all-reduce is lost (issue 4: detect within 5 s). */
const POLL_TIMEOUT_MS = 3000;
/**
 * After a peer is lost, the liveness thread ends this process unless its main thread takes the news
 * within this long (it is blocked in a step): with the 3 s default stall timeout, the others still
 * go within 5 s.
 */
const EXIT_IF_BLOCKED_MS = 500;

const send = (m: FromRunner): void => {
  if (process.connected) process.send!(m);
};

let failed = false;
let who = `runner (pid ${process.pid})`;
let live: Liveness | undefined;
function fail(e: unknown): void {
  if (failed) return;
  failed = true;
  const message = e instanceof Error ? e.message : String(e);
  const user = isTesseraError(e);
  process.stderr.write(`${who}: ${user ? message : e instanceof Error ? (e.stack ?? message) : message}\n`);
  send({ type: "failed", message, user });
  // peers blocked in a step hear why from our liveness thread, not just that our link closed
  live?.close(message);
  // Give the IPC message a moment to leave, then go (a blocked step must not keep us alive).
  process.exitCode = 3;
  setTimeout(() => process.exit(3), 50);
}

if (!process.send) {
  process.stderr.write("runner-main is started by the launcher (it needs an IPC channel)\n");
  process.exit(2);
}
process.on("disconnect", () => process.exit(4));
process.on("unhandledRejection", (e) => fail(e));

const messages: ToRunner[] = [];
let wake: (() => void) | undefined;
process.on("message", (m: ToRunner) => {
  messages.push(m);
  wake?.();
});
async function next<T extends ToRunner["type"]>(type: T): Promise<Extract<ToRunner, { type: T }>> {
  for (;;) {
    const m = messages.shift();
    if (m) {
      if (m.type !== type) throw new Error(`expected '${type}' from the launcher, got '${m.type}'`);
      return m as Extract<ToRunner, { type: T }>;
    }
    await new Promise<void>((r) => (wake = r));
  }
}

async function main(): Promise<void> {
  const init: RunnerInit = await next("init");
  const places = rankPlaces(init.plan);
  const me = places[init.world - 1];
  if (!me) throw new Error(`world rank ${init.world} is not in the plan`);
  who = describeRank(me);
  if (init.digest) {
    const digest = await modelDigest(init.modelPath);
    if (digest !== init.digest) {
      throw new TesseraError(`the model file here differs from the one the instance was placed with (header digest ${digest.slice(0, 12)}…, expected ${init.digest.slice(0, 12)}…): copy the same file to every node`, init.modelPath);
    }
  }
  const missing = await missingShardBytes(init.modelPath, { layers: me.layers, tp: me.tpSize > 1 ? { rank: me.tpRank, size: me.tpSize } : undefined });
  if (missing > 0) {
    throw new TesseraError(
      `this node holds only part of the model, without ${formatBytes(missing)} of what ${who} reads: the file's other bytes read as zeros, so it will not run on them (fetch its shard first)`,
      init.modelPath,
    );
  }
  const worldListener = await GroupListener.open(init.host, 0);
  const tpListener = me.tpSize > 1 ? await GroupListener.open(init.host, 0) : undefined;
  // Heartbeats from a thread of their own: a long synchronous step here is not mistaken for a stall.
  live = await Liveness.start({
    host: init.host,
    self: init.world,
    count: places.length + 1,
    groupId: `${init.instance}/live`,
    owner: who,
    lostAfterMs: init.stallTimeoutMs,
    exitIfBlockedMs: EXIT_IF_BLOCKED_MS,
    key: init.key,
  });
  // Until the groups are up, a lost peer just ends this runner; then it fails the groups first, so
  // the other ranks hear the reason (ABORT) rather than a reset connection.
  let onLoss: (e: TesseraError) => void = fail;
  live.onLost((e) => onLoss(e));
  send({ type: "ports", world: worldListener.port, tp: tpListener?.port, live: live.port });

  const { source, counts } = countReads(await openModel(init.modelPath));
  let stage: StageCompute | undefined;
  let world: Group | undefined;
  let tp: Group | undefined;
  try {
    const slices = checkPlan(source.config, init.plan, splitBlocks(source));
    const slice = slices[me.stage]![me.tpRank]!;
    // Tensor-group ranks are numbered within the stage: say which group, so "rank 1" is not read as world rank 1.
    const inTpGroup = (e: unknown): unknown =>
      isTesseraError(e) ? new TesseraError(e.message, `tensor group of stage ${me.stage} (its rank r is runner ${me.world - me.tpRank} + r)`) : e;
    // Decode-sized partials are busy-polled (transport/busy-poll.ts): one token makes 2 all-reduces per
    // layer, and an event-loop round trip for each cost more than the halved matmuls saved.
    const busyPoll = process.env.TESSERA_BUSY_POLL !== "0";
    const allReduce = (x: Float32Array): Promise<void> =>
      tp!.allReduce(x, { poll: busyPoll && x.byteLength <= POLL_MAX_BYTES, compress: init.compressActivations }).catch((e: unknown) => {
        throw inTpGroup(e);
      });
    stage = await loadStage(source, {
      layers: me.layers,
      slice,
      contextLength: init.contextLength,
      slots: init.slots ?? 1,
      threads: init.threads,
      device: init.device,
      allReduce,
      onProgress: (p) => send({ type: "progress", ...p }),
    });
    send({ type: "loaded", rssBytes: process.memoryUsage().rss, read: { ...counts } });

    const peers = await next("peers");
    live.watch(peers.live, (id) => describeWorldRank(id, places));
    const heartbeats = live;
    const join = (rank: number, size: number, addrs: PeerAddress[], id: string, listener: GroupListener, toWorld: (r: number) => number): Promise<Group> =>
      Group.join({
        rank,
        size,
        peers: addrs,
        groupId: id,
        key: init.key,
        listener,
        stepTimeoutMs: init.stallTimeoutMs,
        liveness: (r) => heartbeats.silentMs(toWorld(r)),
        // a busy-polling rank never yields to the heartbeat monitor: it times out peers itself
        pollTimeoutMs: Math.min(POLL_TIMEOUT_MS, init.stallTimeoutMs),
        ...(process.env.TESSERA_POLL_SPIN_MS ? { pollSpinMs: Number(process.env.TESSERA_POLL_SPIN_MS) } : {}),
        timeoutMs: 60_000,
      });
    const joins: Promise<Group>[] = [join(init.world, places.length + 1, peers.world, `${init.instance}/world`, worldListener, (r) => r)];
    if (tpListener) {
      const tpBase = me.world - me.tpRank;
      joins.push(join(me.tpRank, me.tpSize, peers.tp!, `${init.instance}/stage${me.stage}`, tpListener, (t) => tpBase + t));
    }
    [world, tp] = await Promise.all(joins);
    // A lost peer fails every group it is in; whichever notices first ends this runner.
    world.onFailure(fail);
    tp?.onFailure((e) => fail(inTpGroup(e)));
    onLoss = (e) => {
      world!.abort(e);
      tp?.abort(e);
    };
    send({ type: "joined" });
    const delay = init.testStepDelay?.world === init.world ? init.testStepDelay.ms : 0;
    const vocabRows = vocabSlices(lmHeadRows(source), places[places.length - 1]!.tpSize);
    await serveSteps(world, stage, me, places, source.config.hiddenSize, vocabRows, delay);
    live.close(); // BYE: leaving now is no loss to the others
  } finally {
    world?.close();
    tp?.close();
    stage?.dispose();
    await source.close();
  }
}

main().then(
  () => {
    // maxRSS is a high-water mark (KiB): read at exit it covers every step.
    const m: FromRunner = { type: "exiting", peakRssBytes: process.resourceUsage().maxRSS * 1024 };
    if (process.connected) process.send!(m, () => process.exit(0));
    else process.exit(0);
  },
  (e) => fail(e),
);
