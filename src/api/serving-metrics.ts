import type { GenerationResult } from "../inference/result.js";
import type { ModelCard } from "../inference/service.js";
import { Histogram, type MetricFamily } from "./metrics.js";

const TTFT_BOUNDS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const TPS_BOUNDS = [1, 2, 5, 10, 20, 35, 50, 75, 100, 200, 500];

/**
 * What the serving side of a node counts: HTTP requests by route, method and status; per model
 * that runs on this node, time to first token and decode speed (histograms) and tokens in and out;
 * and, from the router's cards at scrape time, each model's queue depth, running requests and
 * whether it is loaded (every place the node knows, labelled with the node).
 */
export class ServingMetrics {
  private readonly requests = new Map<string, { route: string; method: string; status: string; count: number }>();
  private readonly perModel = new Map<string, { ttft: Histogram; tps: Histogram; prompt: number; generated: number }>();

  countRequest(route: string, method: string, status: number): void {
    const key = `${method} ${route} ${status}`;
    const r = this.requests.get(key) ?? { route, method, status: String(status), count: 0 };
    r.count++;
    this.requests.set(key, r);
  }

  observe(model: string, result: GenerationResult): void {
    let m = this.perModel.get(model);
    if (!m) {
      m = { ttft: new Histogram(TTFT_BOUNDS), tps: new Histogram(TPS_BOUNDS), prompt: 0, generated: 0 };
      this.perModel.set(model, m);
    }
    const t = result.timings;
    m.prompt += t.promptTokens;
    m.generated += t.generatedTokens;
    if (t.generatedTokens > 0) m.ttft.observe(t.firstTokenMs / 1000);
    if (t.decodeTps > 0) m.tps.observe(t.decodeTps);
  }

  families(cards: ModelCard[]): MetricFamily[] {
    const models = [...this.perModel.entries()].sort(([a], [b]) => a.localeCompare(b));
    const place = (c: ModelCard) => ({ model: c.id, node: c.node });
    return [
      {
        name: "tessera_http_requests_total",
        help: "HTTP requests answered, by route pattern, method and status.",
        type: "counter",
        samples: [...this.requests.values()].map((r) => ({ labels: { route: r.route, method: r.method, status: r.status }, value: r.count })),
      },
      { name: "tessera_model_requests_queued", help: "Requests waiting for a model's slot.", type: "gauge", samples: cards.map((c) => ({ labels: place(c), value: c.queued })) },
      { name: "tessera_model_requests_running", help: "Requests a model is generating for.", type: "gauge", samples: cards.map((c) => ({ labels: place(c), value: c.running })) },
      { name: "tessera_model_batch_slots", help: "Requests a model decodes together (continuous batching slots).", type: "gauge", samples: cards.filter((c) => c.slots !== undefined).map((c) => ({ labels: place(c), value: c.slots! })) },
      { name: "tessera_model_loaded", help: "1 while a model is loaded and ready.", type: "gauge", samples: cards.map((c) => ({ labels: place(c), value: c.state === "ready" ? 1 : 0 })) },
      {
        name: "tessera_time_to_first_token_seconds",
        help: "From a request's start on its model's node to its first token.",
        type: "histogram",
        samples: models.flatMap(([model, m]) => m.ttft.samples({ model })),
      },
      {
        name: "tessera_decode_tokens_per_second",
        help: "Decode speed of each generation (tokens after the first, per second).",
        type: "histogram",
        samples: models.flatMap(([model, m]) => m.tps.samples({ model })),
      },
      { name: "tessera_prompt_tokens_total", help: "Prompt tokens of finished generations.", type: "counter", samples: models.map(([model, m]) => ({ labels: { model }, value: m.prompt })) },
      { name: "tessera_generated_tokens_total", help: "Tokens generated.", type: "counter", samples: models.map(([model, m]) => ({ labels: { model }, value: m.generated })) },
    ];
  }
}
