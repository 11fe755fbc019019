// llama.cpp (node-llama-cpp) as one more configuration of a paired benchmark: the model lives in a
// child process of its own (its threads never share a process with ours), and the parent asks it for
// timed decode blocks and times to first token, alternated with our configurations round by round.
//   parent: llamaConfig({ name, path, threads, contextLength, gpu? }) → a Config (bench/parallel/configs.ts)
//   child:  node dist/bench/llama/llama-config.js --child MODEL THREADS CTX GPU
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Block, Config } from "../parallel/configs.js";

export interface LlamaOptions {
  name: string;
  path: string;
  threads: number;
  contextLength: number;
  /** "cpu" (default), or a node-llama-cpp GPU type ("cuda", "vulkan") with every layer offloaded. */
  gpu?: string;
}

type Request = { type: "decode"; prompt: number[]; tokens: number } | { type: "ttft"; prompt: number[] } | { type: "close" };
type Reply = { type: "loaded"; gpu: string; loadMs: number } | { type: "decode"; msPerToken: number; cpuMs: number } | { type: "ttft"; ms: number } | { type: "error"; message: string };

const UNTIMED_STEPS = 2;

async function child(path: string, threads: number, contextLength: number, gpu: string): Promise<void> {
  const { getLlama } = await import("node-llama-cpp");
  type Token = import("node-llama-cpp").Token;
  const t0 = performance.now();
  const llama = await getLlama({ gpu: gpu === "cpu" ? false : (gpu as "cuda" | "vulkan"), build: "never", maxThreads: threads, logLevel: "error" as never });
  const model = await llama.loadModel({ modelPath: path, gpuLayers: gpu === "cpu" ? 0 : "max" });
  const ctx = await model.createContext({ contextSize: contextLength, batchSize: Math.min(512, contextLength), threads: { ideal: threads, min: threads } });
  const seq = ctx.getSequence();
  const send = (m: Reply): void => void process.send!(m);
  // One token per call, asking for the next token so the logits are computed every step (as a server does).
  const step = (token: number) => seq.controlledEvaluate([[token as Token, { generateNext: { token: true } }]]);
  send({ type: "loaded", gpu: llama.gpu === false ? "cpu" : String(llama.gpu), loadMs: performance.now() - t0 });
  process.on("message", (m: Request) => {
    void (async () => {
      try {
        if (m.type === "close") {
          await ctx.dispose();
          await model.dispose();
          await llama.dispose();
          process.exit(0);
        }
        await seq.clearHistory();
        const prompt = m.prompt as Token[];
        const last = prompt.length - 1;
        const t = performance.now();
        await seq.controlledEvaluate([...prompt.slice(0, last), [prompt[last]!, { generateNext: { token: true } }]]);
        if (m.type === "ttft") return send({ type: "ttft", ms: performance.now() - t });
        for (let i = 0; i < UNTIMED_STEPS; i++) await step(prompt[i % prompt.length]!);
        const c0 = process.cpuUsage();
        const t1 = performance.now();
        for (let i = 0; i < m.tokens; i++) await step(prompt[i % prompt.length]!);
        const ms = performance.now() - t1;
        const c = process.cpuUsage(c0);
        send({ type: "decode", msPerToken: ms / m.tokens, cpuMs: (c.user + c.system) / 1000 / m.tokens });
      } catch (e) {
        send({ type: "error", message: (e as Error).message });
      }
    })();
  });
}

/** llama.cpp in a child process, as a Config: its prompt is `prompt` (the same tokens our configurations get). */
export async function llamaConfig(o: LlamaOptions, prompt: Int32Array): Promise<Config & { gpu: string; loadMs: number }> {
  const self = fileURLToPath(import.meta.url);
  const proc = fork(self, ["--child", o.path, String(o.threads), String(o.contextLength), o.gpu ?? "cpu"], {
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  let stderr = "";
  proc.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  let waiting: ((m: Reply) => void) | undefined;
  proc.on("message", (m: Reply) => waiting?.(m));
  proc.on("exit", (code) => waiting?.({ type: "error", message: `llama.cpp child exited with ${code}: ${stderr}` }));
  const ask = (req?: Request): Promise<Reply> =>
    new Promise((resolve, reject) => {
      waiting = (m) => (m.type === "error" ? reject(new Error(m.message)) : resolve(m));
      if (req) proc.send(req);
    });
  const loaded = (await ask()) as Extract<Reply, { type: "loaded" }>;
  const tokens = [...prompt];
  return {
    name: o.name,
    pids: [proc.pid!],
    gpu: loaded.gpu,
    loadMs: loaded.loadMs,
    async block(n: number): Promise<Block> {
      const r = (await ask({ type: "decode", prompt: tokens, tokens: n })) as Extract<Reply, { type: "decode" }>;
      return { msPerToken: r.msPerToken, cpuMs: [r.cpuMs] };
    },
    async ttft(p: Int32Array): Promise<number> {
      return ((await ask({ type: "ttft", prompt: [...p] })) as Extract<Reply, { type: "ttft" }>).ms;
    },
    async close() {
      const gone = new Promise((r) => proc.once("exit", r));
      proc.send({ type: "close" } satisfies Request);
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      proc.kill("SIGKILL");
    },
  };
}

if (process.argv[2] === "--child") {
  const [path, threads, ctx, gpu] = process.argv.slice(3);
  child(path!, Number(threads), Number(ctx), gpu!).catch((e) => {
    process.send!({ type: "error", message: (e as Error).message } satisfies Reply);
    process.exit(1);
  });
}
