import { MessageChannel, type MessagePort } from "node:worker_threads";
import type { InstanceRecord } from "../cluster/instance-state.js";
import type { ClusterNode } from "../cluster/node.js";
import type { ClusterState } from "../cluster/state.js";
import { EngineWorker } from "../inference/worker/engine-worker.js";
import type { GenerateCallbacks } from "../inference/worker/engine-worker.js";
import { resolveRequest, type ResolvedRequest } from "../inference/request.js";
import type { GenerationResult } from "../inference/result.js";
import type { FromDriverControl, ToDriverControl } from "../runner/bridge-protocol.js";
import type { ClusterRemote } from "../runner/cluster-backend.js";
import type { ModelFiles } from "./model-source.js";
import type { RankReporter } from "./reporter.js";
import { STALL_TIMEOUT_MS } from "./supervisor.js";
import { groupOf, shardPlanOf, wiring } from "./wiring.js";

/** The decode speed measured right after an instance is ready: greedy tokens from a fixed prompt. */
const MEASURE_TOKENS = 24;
/** A measurement from real traffic is reported at most this often. */
const MEASURE_REPORT_MS = 10_000;

/**
 * The driver of one instance placed with this node as its home: an inference worker thread
 * (EngineWorker, cluster backend) whose driver thread joins the runners the nodes started. It
 * reports the driver's ports (world rank 0), hands it every rank's address once all have loaded,
 * and reports it ready once it has joined and warmed up — with a first measured decode speed.
 * Generation runs on that worker thread, never on the node's event loop.
 */
export class DriverHost {
  private readonly control: MessagePort;
  private engine: EngineWorker | undefined;
  private readonly starting: Promise<EngineWorker>;
  private peersSent = false;
  private ports: { world: number; live: number } | undefined;
  private stopped = false;
  private failed = false;
  private measuredAt = 0;
  readonly id: string;
  readonly generation: number;

  constructor(
    private readonly node: ClusterNode,
    private readonly reporter: RankReporter,
    readonly instance: InstanceRecord,
    files: ModelFiles,
    private readonly log: (m: string) => void,
  ) {
    this.id = instance.id;
    this.generation = instance.generation;
    const { port1, port2 } = new MessageChannel();
    this.control = port1;
    port1.on("message", (m: FromDriverControl) => {
      if (m.type === "ports") {
        this.ports = { world: m.world, live: m.live };
        this.report("loading", 1);
      } else if (m.type === "failed") {
        this.fail(m.message);
      }
    });
    port1.unref();
    const remote: ClusterRemote = { group: groupOf(instance), plan: shardPlanOf(instance), slots: instance.plan.parallel ?? 1, host: node.bindHost, key: node.dataPlaneKey(instance.id), stallTimeoutMs: STALL_TIMEOUT_MS };
    // The driver reads the header only (tokenizer, config): any copy or shard of the model here will do.
    this.starting = files
      .rankPath(instance.source, { layers: [0, 0] })
      .then((path) => EngineWorker.start(path, { contextLength: instance.plan.ctx, threads: 1, backend: { kind: "cluster", remote, control: port2 } }));
    this.starting.then(
      (engine) => {
        if (this.stopped) return void engine.close().catch(() => {});
        this.engine = engine;
        this.report("ready", 1);
        this.log(`instance ${this.id}: driver ready`);
        void this.measure();
      },
      (e: Error) => this.fail(e.message),
    );
  }

  /** Hands the driver every rank's address once all have loaded. */
  sync(state: ClusterState, i: InstanceRecord): void {
    if (this.peersSent || !this.ports) return;
    const w = wiring(state, i);
    if (!w) return;
    this.peersSent = true;
    this.post({ type: "peers", world: w.world, live: w.live });
  }

  /** The engine, once the instance is ready (generate() streams tokens from its worker thread). */
  get ready(): EngineWorker | undefined {
    return this.stopped || this.failed ? undefined : this.engine;
  }

  /** Generates on this instance and keeps its measured decode speed current. */
  async generate(request: ResolvedRequest, callbacks: GenerateCallbacks = {}): Promise<GenerationResult> {
    const engine = this.ready;
    if (!engine) throw new Error(`instance ${this.id} is not ready on this node`);
    const result = await engine.generate(request, callbacks);
    this.recordSpeed(result, false);
    return result;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.post({ type: "abort", reason: "the instance was torn down" });
    if (this.engine) await this.engine.close().catch(() => {});
    this.control.close();
  }

  private async measure(): Promise<void> {
    try {
      const result = await this.generate(resolveRequest({ input: { kind: "tokens", tokens: [1, 2, 3, 4] }, maxTokens: MEASURE_TOKENS, temperature: 0, seed: 1, stopTokenIds: [] }));
      this.recordSpeed(result, true);
    } catch (e) {
      if (!this.stopped) this.log(`instance ${this.id}: decode measurement failed: ${(e as Error).message}`);
    }
  }

  private recordSpeed(result: GenerationResult, force: boolean): void {
    const t = result.timings;
    if (t.generatedTokens < 4 || !(t.decodeTps > 0)) return;
    const now = Date.now();
    if (!force && now - this.measuredAt < MEASURE_REPORT_MS) return;
    this.measuredAt = now;
    this.report("ready", 1, undefined, { decodeTps: Math.round(t.decodeTps * 100) / 100 });
  }

  private fail(message: string): void {
    if (this.stopped || this.failed) return;
    this.failed = true;
    this.log(`instance ${this.id}: driver failed: ${message}`);
    this.report("failed", 0, message);
  }

  private report(status: "loading" | "ready" | "failed", progress: number, error?: string, measured?: { decodeTps: number }): void {
    if (this.stopped) return;
    const ports = this.ports ? { world: this.ports.world, live: this.ports.live } : undefined;
    this.reporter.report({ id: this.id, generation: this.generation, rank: 0, status, progress, ports, error, measured });
  }

  private post(m: ToDriverControl): void {
    try {
      this.control.postMessage(m);
    } catch {
      /* closed */
    }
  }
}
