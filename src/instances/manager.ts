import { randomBytes } from "node:crypto";
import { isTesseraError } from "../errors.js";
import type { ClusterNode, CommandReply } from "../cluster/node.js";
import type { ClusterState } from "../cluster/state.js";
import type { GenerateCallbacks } from "../inference/worker/engine-worker.js";
import type { EngineWorker } from "../inference/worker/engine-worker.js";
import type { ResolvedRequest } from "../inference/request.js";
import type { GenerationResult } from "../inference/result.js";
import { createInstance, DEFAULT_POLICY, noRoom, previews, reconcile, type Policy } from "./decide.js";
import { DriverHost } from "./driver-host.js";
import { KeptStore } from "./kept-store.js";
import { PATHS_ONLY, resolveModelSource, type ModelFiles, type ResolvedModel } from "./model-source.js";
import { RankReporter } from "./reporter.js";
import { isInstanceCommand, parseCreate, RequestError, type InstanceCommand } from "./requests.js";
import { Supervisor } from "./supervisor.js";
import { instanceView, instanceViews, planViews, type InstanceView, type PlanView } from "./views.js";

const TICK_MS = 500;

export interface InstanceManagerOptions {
  log(message: string): void;
  /** Where models' bytes come from (the node's library); default: models are paths every node holds. */
  files?: ModelFiles;
  policy?: Policy;
}

/** An answer for the HTTP layer: status and JSON body. */
export type Answer = CommandReply;

/**
 * Instances on one node. Every node runs: the supervisor (runners of its ranks), the drivers of the
 * instances it is home to, its reports about them, and the kept set in its data dir. The master also
 * places, re-places and tears down (decide.ts), on commands any node forwards to it and on a timer.
 *
 * For serving (src/api, src/inference): readyInstances(model) lists the ready instances of a model
 * anywhere in the cluster; on an instance's home node, engine(id) is its EngineWorker (generate()
 * streams tokens from the node's inference worker thread) and generate(id, ...) runs one request and
 * keeps the instance's measured decode speed current. Other nodes forward to the home node.
 */
export class InstanceManager {
  private readonly reporter: RankReporter;
  private readonly supervisor: Supervisor;
  private readonly kept: KeptStore;
  private readonly drivers = new Map<string, DriverHost>();
  private readonly policy: Policy;
  private timer: NodeJS.Timeout | null = null;
  private syncQueued = false;
  private stopped = false;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly node: ClusterNode,
    private readonly opts: InstanceManagerOptions,
  ) {
    this.policy = opts.policy ?? DEFAULT_POLICY;
    this.reporter = new RankReporter(node);
    this.supervisor = new Supervisor(node, this.reporter, opts.files ?? PATHS_ONLY, opts.log);
    this.kept = new KeptStore(node, node.dataDir, opts.log);
    node.handleCommands((from, body) => this.onCommand(from, body));
  }

  start(): void {
    this.unsubscribe.push(this.node.replica.onEntry(() => this.queueSync()));
    this.unsubscribe.push(this.node.replica.onReset(() => this.queueSync()));
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.tick();
  }

  /** Ends this node's runners and drivers (node shutdown); the cluster re-places what they ran. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const u of this.unsubscribe) u();
    await Promise.all([this.supervisor.stopAll(), ...[...this.drivers.values()].map((d) => d.stop())]);
    this.drivers.clear();
  }

  // ---- what the API and serving call ----

  list(): InstanceView[] {
    return instanceViews(this.state);
  }

  get(id: string): InstanceView | undefined {
    const i = this.state.instances[id];
    return i ? instanceView(this.state, i) : undefined;
  }

  /** Ready instances of a model (by the name it was launched with, or its path), anywhere in the cluster. */
  readyInstances(model?: string): InstanceView[] {
    return this.list().filter((i) => i.status === "ready" && (model === undefined || i.model === model || i.source.path === model));
  }

  /** On an instance's home node, once it is ready: its engine. */
  engine(id: string): EngineWorker | undefined {
    const i = this.state.instances[id];
    const d = this.drivers.get(id);
    return i?.status === "ready" && d?.generation === i.generation ? d.ready : undefined;
  }

  /** Runs one request on an instance whose home is this node. */
  async generate(id: string, request: ResolvedRequest, callbacks?: GenerateCallbacks): Promise<GenerationResult> {
    const i = this.state.instances[id];
    if (!i) throw new RequestError(404, `no instance ${id}`);
    if (i.home !== this.node.id) throw new RequestError(409, `instance ${id} runs its driver on node ${this.state.nodes[i.home]?.name ?? i.home}: send the request there`);
    const d = this.drivers.get(id);
    if (i.status !== "ready" || !d?.ready || d.generation !== i.generation) throw new RequestError(409, `instance ${id} is ${i.status}, not ready`);
    return d.generate(request, callbacks);
  }

  /** POST /instances: resolves the model here (the file must be on this node too), then asks the master. */
  async create(body: unknown): Promise<Answer> {
    try {
      const { model, request } = parseCreate(this.state, body);
      const resolved = await this.resolve(model);
      const cmd: InstanceCommand = { op: "create", request, resolved };
      return await this.node.command(cmd as unknown as Record<string, unknown>);
    } catch (e) {
      return errorAnswer(e);
    }
  }

  async delete(id: string): Promise<Answer> {
    const cmd: InstanceCommand = { op: "delete", id };
    return this.node.command(cmd as unknown as Record<string, unknown>);
  }

  /** GET /instances/previews: every plan for a model on the cluster as it is now, computed here. */
  async previews(query: unknown): Promise<Answer> {
    try {
      const { model, request } = parseCreate(this.state, query);
      const resolved = await this.resolve(model);
      const { keep: _keep, ...ask } = request;
      const plans: PlanView[] = planViews(this.state, previews(this.state, resolved.summary, ask));
      return { status: 200, body: { model, ctx: plans[0]?.ctx ?? null, plans } };
    } catch (e) {
      return errorAnswer(e);
    }
  }

  /** Pids of the runner processes this node supervises. */
  get runnerPids(): number[] {
    return this.supervisor.pids;
  }

  // ---- internals ----

  private get state(): ClusterState {
    return this.node.replica.state;
  }

  private async resolve(model: string): Promise<ResolvedModel> {
    try {
      return await resolveModelSource(model, this.opts.files);
    } catch (e) {
      if (isTesseraError(e)) throw new RequestError(/no such file|not found/.test(e.message) ? 404 : 400, `${e.message} (neither a model in the cluster's registry, see GET /models, nor a model file on this node)`);
      throw e;
    }
  }

  private queueSync(): void {
    if (this.syncQueued || this.stopped) return;
    this.syncQueued = true;
    setImmediate(() => {
      this.syncQueued = false;
      this.sync();
    });
  }

  private tick(): void {
    if (this.stopped) return;
    if (this.node.mastering) {
      for (const e of reconcile(this.state, Date.now(), this.policy)) this.node.submit(e);
    }
    this.sync();
  }

  private sync(): void {
    if (this.stopped) return;
    const state = this.state;
    this.supervisor.sync(state);
    this.syncDrivers(state);
    this.reporter.flush();
    this.kept.sync();
  }

  private syncDrivers(state: ClusterState): void {
    for (const [id, d] of this.drivers) {
      const i = state.instances[id];
      if (!i || i.generation !== d.generation || (i.status !== "starting" && i.status !== "ready")) {
        this.drivers.delete(id);
        void d.stop();
      }
    }
    for (const i of Object.values(state.instances)) {
      if (i.home !== this.node.id || (i.status !== "starting" && i.status !== "ready")) continue;
      let d = this.drivers.get(i.id);
      if (!d) {
        if (i.ranks[0]!.status !== "starting") {
          // the driver of this placement is gone (this node restarted within it)
          this.reporter.report({ id: i.id, generation: i.generation, rank: 0, status: "failed", progress: 0, error: "its driver is gone (the node restarted)" });
          continue;
        }
        d = new DriverHost(this.node, this.reporter, i, this.opts.files ?? PATHS_ONLY, this.opts.log);
        this.drivers.set(i.id, d);
      }
      d.sync(state, i);
    }
  }

  /** On the master: a command from any node (this one included). */
  private async onCommand(_from: string, body: Record<string, unknown>): Promise<CommandReply> {
    if (!isInstanceCommand(body)) return { status: 400, body: { error: { message: "not an instance command" } } };
    const state = this.state;
    if (body.op === "delete") {
      const i = state.instances[body.id];
      if (!i && !(body.id in state.kept)) return { status: 404, body: { error: { message: `no instance ${body.id}` } } };
      this.node.submit({ type: "instance-deleted", id: body.id, reason: "deleted" });
      return { status: 200, body: { id: body.id, deleted: true } };
    }
    try {
      const id = randomBytes(6).toString("hex");
      const { instance, plans } = createInstance(state, id, body.resolved, body.request, Date.now());
      if (!instance) {
        return { status: 409, body: { error: { message: `cannot place ${body.resolved.model}: ${noRoom(plans)}`, plans: planViews(state, plans) } } };
      }
      this.node.submit({ type: "instance-placed", instance });
      this.opts.log(`instance ${id}: ${instance.strategy} over ${instance.plan.stages.map((s) => s.nodes.map((n) => state.nodes[n]?.name ?? n).join("+")).join(" → ")} (${body.resolved.model})`);
      return { status: 201, body: instanceView(this.state, instance) };
    } catch (e) {
      return errorAnswer(e);
    }
  }
}

function errorAnswer(e: unknown): Answer {
  if (e instanceof RequestError) return { status: e.status, body: { error: { message: e.message } } };
  if (isTesseraError(e)) return { status: 400, body: { error: { message: e.message } } };
  return { status: 500, body: { error: { message: (e as Error).message } } };
}
