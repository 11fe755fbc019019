import { hasTaskset, pin, startChild, type LineChild } from "./children.js";

/** One rank's timed block, per token: wall and CPU time of its layers + lm_head slice, and the head's share. */
export interface RankBlock {
  wallMs: number;
  cpuMs: number;
  headMs: number;
}

/**
 * The two ranks of a TP 2 model as tp-compute child processes (all-reduce a no-op): what a rank's
 * compute costs per decode token with the network taken out. Both stay loaded; each block runs
 * whichever ranks it is given at the same moment.
 */
export class ComputeRanks {
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly procs: LineChild[],
    /** Rank r runs on core r (only where taskset exists). */
    readonly pinned: boolean,
  ) {}

  static async start(modelPath: string, contextLength: number, wantPin: boolean): Promise<ComputeRanks> {
    const procs = [0, 1].map((r) => startChild("./tp-compute", import.meta.url, ["--rank", String(r), "--model", modelPath, "--ctx", String(contextLength)]));
    const ready = await Promise.all(procs.map((p) => p.line()));
    if (ready.some((l) => l !== "ready")) {
      for (const p of procs) p.child.kill("SIGKILL");
      throw new Error(`a tp-compute rank failed to load (said ${JSON.stringify(ready)})`);
    }
    const pinned = wantPin && hasTaskset();
    if (pinned) procs.forEach((p, r) => pin(p.child.pid!, r));
    return new ComputeRanks(procs, pinned);
  }

  get pids(): number[] {
    return this.procs.map((p) => p.child.pid!);
  }

  /** Runs `tokens` timed steps (after the same 16-position prompt and 2 untimed steps as a decode block) on these ranks at once. */
  async block(ranks: number[], tokens: number): Promise<RankBlock[]> {
    const ps = ranks.map((r) => this.procs[r]!);
    for (const p of ps) p.send(`go ${tokens}`);
    return Promise.all(ps.map(async (p) => JSON.parse(await p.line()) as RankBlock));
  }

  /** Ends both children (once, however many configurations share them). */
  close(): Promise<void> {
    return (this.closing ??= this.end());
  }

  private async end(): Promise<void> {
    await Promise.all(
      this.procs.map((p) => {
        if (p.child.exitCode !== null) return;
        const gone = new Promise((r) => p.child.once("exit", r));
        p.send("quit");
        return gone;
      }),
    );
  }
}
