// The driver's own thread: it starts the runner processes (or, for a cluster instance, joins the
// runners the nodes started) and talks to them over the network, so the engine thread (which must
// block in Stepper.forward) can wait on it with Atomics (bridge.ts).
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { isTesseraError } from "../errors.js";
import { ShardedDriver } from "./driver.js";
import { RemoteRunners } from "./remote.js";
import type { BridgeReply, BridgeRequest, DriverThreadData, DriverThreadEvent } from "./bridge-protocol.js";

const data = workerData as DriverThreadData;
const port: MessagePort = data.port;
const flag = new Int32Array(data.flag);
const tell = (m: DriverThreadEvent): void => parentPort!.postMessage(m);
const wire = (e: unknown) => ({ message: e instanceof Error ? e.message : String(e), user: isTesseraError(e) });

/** Replies in request order: a decode step's comes when its logits do, and every later one waits for it. */
let replies: Promise<void> = Promise.resolve();

function answer(m: BridgeReply | Promise<BridgeReply>): void {
  replies = replies.then(async () => {
    const reply = await Promise.resolve(m).catch((e: unknown): BridgeReply => ({ type: "error", error: wire(e) }));
    port.postMessage(reply, reply.type === "logits" ? [reply.logits.buffer as ArrayBuffer] : []);
    // one more reply is there to take (bridge.ts counts them)
    Atomics.add(flag, 0, 1);
    Atomics.notify(flag, 0);
  });
}

const logitsReply = (logits: Promise<Float32Array>): Promise<BridgeReply> => logits.then((l) => ({ type: "logits", logits: l }));

let driver: ShardedDriver;
try {
  if (data.remote) {
    const r = data.remote;
    driver = await ShardedDriver.attach(await RemoteRunners.join(r, data.control!), r.contextLength, r.microBatch, r.slots);
  } else {
    driver = await ShardedDriver.start({ ...data.launch!, onProgress: (progress) => tell({ type: "progress", progress }) });
  }
  tell({ type: "ready", vocabSize: driver.vocabSize, rssBytes: driver.runners.rssBytes, pids: driver.runners.pids });
} catch (e) {
  tell({ type: "error", error: wire(e) });
  process.exit(0);
}

let queue = Promise.resolve();
/** A prefill's failure, kept for the next request's answer (prefills have none). */
let deferred: unknown;
port.on("message", (m: BridgeRequest) => {
  queue = queue.then(async () => {
    if (m.type === "truncate") return driver.truncate(m.pos, m.slot);
    if (m.type === "close") {
      await replies;
      await driver.close();
      answer({ type: "closed" });
      await replies;
      port.close();
      return;
    }
    if (m.type === "prefill") {
      if (deferred === undefined) await driver.prefill(m.tokens).catch((e: unknown) => (deferred = e));
      return;
    }
    try {
      if (deferred !== undefined) {
        const e = deferred;
        deferred = undefined;
        throw e;
      }
      if (m.type === "beginSampling") {
        await driver.beginSampling(m.params, m.logprobs !== undefined ? { logprobs: m.logprobs } : {}, m.prompt, m.slot);
        answer({ type: "begun" });
      } else if (m.type === "forwardSample") {
        answer({ type: "sample", sample: await driver.forwardSample(m.tokens, m.slot) });
      } else if (m.type === "decode") {
        // sent now; answered when its logits (or tokens) come, while later requests go on
        const entries = Array.from(m.slots, (slot, i) => ({ slot, token: m.tokens[i]! }));
        if (m.sample) answer((await driver.startDecodeSampled(entries)).samples.then((samples): BridgeReply => ({ type: "samples", samples })));
        else answer(logitsReply((await driver.startDecode(entries)).logits));
      } else {
        answer(logitsReply(driver.forward(m.tokens, { allLogits: m.allLogits, slot: m.slot })));
        await replies;
      }
    } catch (e) {
      answer({ type: "error", error: wire(e) });
    }
  });
});
