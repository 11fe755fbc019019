/*
 * The data plane: what the runner and the benchmarks import. It moves Float32Array / byte payloads
 * between the ranks of one instance and knows nothing about models.
 *
 *   const listener = await GroupListener.open("0.0.0.0", 0);       // report listener.port to the master
 *   const group = await Group.join({ rank, size, peers, groupId, listener });
 *   await group.allReduce(partial);                                 // in place, same bits on every rank
 *   await group.allReduce(partial, { poll: true });                 // decode-sized: spin on the fds first (busy-poll.ts)
 *   await group.send(next, hidden); await group.recv(prev, hidden); // pipeline hops
 *   await group.broadcast(lastRank, token);                         // sampled token to every rank
 *   group.onFailure((e) => ...);                                    // a lost rank, named in e.message
 *   group.close();
 *
 * Rules: every rank calls the same collectives in the same order (one allReduce at a time); a peer
 * silent for stepTimeoutMs (3 s) is declared lost. Data-link heartbeats come from the event loop,
 * so a rank that blocks its loop longer (a long synchronous ORT run) needs a second witness:
 *
 *   const live = await Liveness.start({ host, self: rank, count: size, groupId });  // heartbeats from a worker thread
 *   live.watch(liveAddresses, labelOf);
 *   Group.join({ ..., liveness: (r) => live.silentMs(r) });          // busy peers are waited for; stopped ones fail
 */
export { Group, type JoinOptions, type AllReduceOptions, type PeerAddress } from "./group.js";
export { GroupListener } from "./listener.js";
export { Liveness, type LivenessOptions } from "./liveness.js";
export { DelayProxy, WireClock, type DelayProxyOptions, type LinkShape } from "./delay-proxy.js";
export { QUANT_BLOCK, compressedBytes, quantizeInto, dequantizeInto } from "./quantize.js";
