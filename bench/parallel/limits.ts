// What limits TP 2 and PP 2 on the machine the benchmark ran on, computed from the numbers of the
// same run (pure: no measuring here). Every sentence is built from measured values so a rerun on
// another machine states its own conclusion.
import { round2 as r2 } from "../stats.js";

export interface Timed {
  /** ms per decode token at the run's median single-process speed: single ms ÷ ratio (so it agrees with the ratio). */
  ms: number;
  /** Median over rounds of (this tok/s ÷ single tok/s of the same round). */
  ratio: number;
}

export interface Measured {
  layers: number;
  single: Timed;
  tp2?: Timed & { driverCpuMs: number };
  tp2Pinned?: Timed & { driverCpuMs: number };
  pp2?: Timed;
  /** Both TP ranks computing at once with no network: ms is the slowest rank's. */
  computePair?: Timed & { pinned: boolean; headMs: number };
  /** TP rank 0 computing alone (no network, nothing else running). */
  computeAlone?: Timed;
  /** Busy-polled all-reduce of hidden × 4 bytes, median µs, measured alone. */
  allReduceUs: number;
  rawRttUs: number;
  /** Raw round trip of one rank's logits slice, median µs. */
  logitsRttUs: number;
  /** TP 2 through the delay proxy: tok/s ÷ direct TP 2 tok/s, paired, median. */
  delayed: { latencyUs: number; ratioToDirect: number }[];
  targets: { tp2: number; pp2: number; allReduce: number };
}

export interface Decomposition {
  config: string;
  token_ms: number;
  compute_ms: number;
  all_reduce_ms: number;
  driver_and_rest_ms: number;
  /** Part of the rest: the driver process's own CPU per token. */
  driver_cpu_ms: number;
}

const f = (x: number, d = 2): string => x.toFixed(d);
/** A difference with its sign: "+1.20" / "−0.35". */
const signed = (x: number): string => (x < 0 ? `−${f(-x)}` : `+${f(x)}`);

/** A TP 2 token = the slowest rank's compute (no network) + its all-reduces (measured alone) + the rest (driver round trip, waits). */
export function decompose(m: Measured): Decomposition[] {
  if (!m.computePair) return [];
  const ar = (2 * m.layers * m.allReduceUs) / 1000;
  const out: Decomposition[] = [];
  for (const [config, t] of [["tp2_pinned", m.tp2Pinned], ["tp2", m.tp2]] as const) {
    if (!t) continue;
    out.push({ config, token_ms: r2(t.ms), compute_ms: r2(m.computePair.ms), all_reduce_ms: r2(ar), driver_and_rest_ms: r2(t.ms - m.computePair.ms - ar), driver_cpu_ms: r2(t.driverCpuMs) });
  }
  return out;
}

export function limits(m: Measured): string[] {
  const lines: string[] = [];
  const L2 = 2 * m.layers;
  const arMs = (L2 * m.allReduceUs) / 1000;
  const budget = m.single.ms / m.targets.tp2;
  if (m.tp2) {
    const pinned = m.tp2Pinned ? `, ${f(m.tp2Pinned.ratio)}× with each runner pinned to its own core` : "";
    lines.push(
      `TP 2 decodes at ${f(m.tp2.ratio)}× one process${pinned} (target ≥ ${m.targets.tp2}×): ${f(m.tp2.ms)} ms/token vs ${f(m.single.ms)} ms ` +
        `(all ms here: the median single-process ms per token ÷ the paired ratio).`,
    );
  }
  const cp = m.computePair;
  if (cp) {
    lines.push(
      `Compute-only ceiling: the two ranks with no network (${cp.pinned ? "pinned to cores 0 and 1" : "not pinned"}) take ${f(cp.ms)} ms/token (slowest rank, ` +
        `${f(cp.headMs)} ms of it its lm_head half) → ${f(cp.ratio)}× one process, ${cp.ratio >= m.targets.tp2 ? "above" : "below"} the ${m.targets.tp2}× target before any communication.`,
    );
    if (m.computeAlone) {
      const cost = (cp.ms / m.computeAlone.ms - 1) * 100;
      lines.push(
        `Rank 0 alone takes ${f(m.computeAlone.ms)} ms/token (${f(m.computeAlone.ratio)}×): running both ranks at once makes the slowest ${f(Math.abs(cost), 0)}% ${cost >= 0 ? "slower" : "faster"} ` +
          `(the two cores share memory bandwidth and whatever else runs on this VM).`,
      );
    }
    const tp = m.tp2Pinned ?? m.tp2;
    if (tp) {
      const rest = tp.ms - cp.ms - arMs;
      lines.push(
        `A TP 2 token (${m.tp2Pinned ? "pinned" : "unpinned"}) = ${f(cp.ms)} ms compute + ${f(arMs)} ms in ${L2} all-reduces (${f(m.allReduceUs, 0)} µs each, measured alone) ` +
          `${rest < 0 ? "−" : "+"} ${f(Math.abs(rest))} ms for the rest: the driver's round trip (its CPU alone ${f(tp.driverCpuMs)} ms/token; ` +
          `a logits-slice round trip alone ${f(m.logitsRttUs / 1000)} ms), waiting on the slower rank, and scheduling.`,
      );
    }
    const comm = tp ? tp.ms - cp.ms : arMs;
    if (cp.ms > budget) {
      lines.push(
        `${m.targets.tp2}× needs ≤ ${f(budget)} ms/token: compute alone is ${f(cp.ms - budget)} ms over that, so no network work reaches the target on this machine.`,
      );
    } else {
      lines.push(`${m.targets.tp2}× needs ≤ ${f(budget)} ms/token: compute leaves ${f(budget - cp.ms)} ms for communication, against ${f(comm)} ms measured.`);
    }
    if (m.computeAlone) {
      const free = budget - m.computeAlone.ms;
      lines.push(
        `Where the ranks do not slow each other (a core and memory channel each, as on two machines), compute would be ~${f(m.computeAlone.ms)} ms, ` +
          (free > 0
            ? `leaving ${f(free)} ms for communication against the ${f(comm)} ms measured here: ${free >= comm ? "enough" : `${f(comm - free)} ms short`}.`
            : `already ${f(-free)} ms over the ${f(budget)} ms budget before any communication.`),
      );
    }
  }
  if (m.pp2) {
    lines.push(
      `PP 2 decodes at ${f(m.pp2.ratio)}× one process (target ≥ ${m.targets.pp2}×): the stages run one after the other, so a token costs the same layers ` +
        `plus ${f(m.pp2.ms - m.single.ms)} ms of hops and driver work (${f(m.pp2.ms)} vs ${f(m.single.ms)} ms).`,
    );
  }
  const arRatio = m.allReduceUs / m.rawRttUs;
  lines.push(`All-reduce of a decode partial, busy-polled: ${f(m.allReduceUs, 0)} µs = ${f(arRatio)}× a busy-polled raw TCP round trip of the same size (${f(m.rawRttUs, 0)} µs; target ≤ ${m.targets.allReduce}×).`);
  const direct = m.tp2?.ms;
  for (const d of m.delayed) {
    const floor = (L2 * 2 * d.latencyUs) / 1000;
    const added = direct === undefined ? "" : `${signed(direct / d.ratioToDirect - direct)} ms/token, `;
    lines.push(
      `Delay proxy ${d.latencyUs} µs one-way: ${f(d.ratioToDirect)}× direct TP 2 (${added}where ${L2} all-reduces × one round trip add ≥ ${f(floor)} ms of latency).`,
    );
  }
  return lines;
}

