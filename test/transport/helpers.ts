import { Group, GroupListener, type JoinOptions } from "../../src/transport/index.js";

let groupCounter = 0;

/** Forms a group of `size` ranks inside this process, on free loopback ports. */
export async function formGroups(size: number, extra: Partial<JoinOptions> = {}): Promise<Group[]> {
  const listeners = await Promise.all(Array.from({ length: size }, () => GroupListener.open("127.0.0.1", 0)));
  const peers = listeners.map((l) => ({ host: "127.0.0.1", port: l.port }));
  const groupId = `test-${process.pid}-${++groupCounter}`;
  return Promise.all(listeners.map((listener, rank) => Group.join({ rank, size, peers, groupId, listener, timeoutMs: 10_000, ...extra })));
}

export function closeAll(groups: Group[]): void {
  for (const g of groups) g.close();
}

/** Deterministic pseudo-random floats in [-scale, scale) (xorshift32). */
export function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  let x = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = ((x / 0x100000000) * 2 - 1) * scale;
  }
  return out;
}
