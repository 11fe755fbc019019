import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import type { Page } from "playwright-core";
import { defaultDashboardDir } from "../../src/api/dashboard-routes.js";
import { removeDir, tempDir, waitFor, type NodeProcess } from "../cluster/node-process.js";
import { smallModel } from "../instances/helpers.js";
import { consoleErrors, contextWithKey, launchBrowser, screenshot, type BrowserSession } from "./browser.js";
import { KEY, keyed, startDashboardCluster } from "./cluster.js";

// The dashboard in Debian's chromium against two node processes (one scenario, in order): the key
// prompt, the topology, launching and stopping an instance from the page, chat, screenshots of every
// view at desktop and phone size, and a node killed while the page watches.

const dirs: string[] = [];
let modelDir = "";
let model = "";
let nodes: NodeProcess[] = [];
let session: BrowserSession;
/** The chat test's conversations (localStorage JSON), shown again in the screenshots. */
let conversations = "[]";

before(async () => {
  if (!existsSync(`${defaultDashboardDir()}/index.html`)) throw new Error("the dashboard is not built: run `npm run build:dashboard`");
  modelDir = tempDir("tessera-dashboard-");
  model = await smallModel(modelDir);
  dirs.push(tempDir(), tempDir());
  [nodes, session] = await Promise.all([startDashboardCluster(model, dirs), launchBrowser()]);
});

after(async () => {
  await session?.close();
  await Promise.all(nodes.map((n) => n.stop()));
  for (const d of [...dirs, modelDir]) removeDir(d);
});

const home = () => nodes[0]!;

/** A page on node 0 with the key already stored, and its console errors. */
async function keyedPage(hash = "", size: "desktop" | "phone" = "desktop"): Promise<{ page: Page; errors: string[] }> {
  const ctx = await contextWithKey(session.browser, KEY, size);
  const page = await ctx.newPage();
  const errors = consoleErrors(page);
  await page.goto(home().url(`/${hash}`));
  await page.getByTestId("connection").filter({ hasText: "live" }).waitFor();
  return { page, errors };
}

test("GET / gives browsers the page without a key, other clients Ollama's answer with the key", async () => {
  const plain = await keyed(home().url("/"));
  assert.equal(plain.status, 200);
  assert.equal(plain.body, "Ollama is running");
  assert.equal((await fetch(home().url("/"))).status, 401, "Ollama's GET / still needs the key");
  const browser = await fetch(home().url("/"), { headers: { accept: "text/html,application/xhtml+xml" } });
  assert.equal(browser.status, 200);
  assert.match(browser.headers.get("content-type")!, /^text\/html/);
  const html = await browser.text();
  const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)?.[1];
  assert.ok(script, html);
  const asset = await fetch(home().url(`/${script}`));
  assert.equal(asset.status, 200);
  assert.match(asset.headers.get("content-type")!, /javascript/);
  assert.match(asset.headers.get("cache-control")!, /immutable/);
  // negative controls: the API itself still needs the key, and a made-up asset is a 404
  assert.equal((await fetch(home().url("/cluster"))).status, 401);
  assert.equal((await fetch(home().url("/assets/nope-123.js"))).status, 404);
});

test("the page asks for the API key, refuses a wrong one, then works with the right one", async () => {
  const ctx = await contextWithKey(session.browser, null);
  const page = await ctx.newPage();
  await page.goto(home().url("/"));
  const prompt = page.getByTestId("key-prompt");
  await prompt.waitFor();
  await screenshot(page, "key-prompt-desktop");
  // by keyboard: the field has the focus, Enter submits
  await page.keyboard.type("not-the-key");
  await page.keyboard.press("Enter");
  await page.getByTestId("key-error").waitFor();
  assert.equal(await page.locator("[data-node]").count(), 0, "nothing of the cluster shows with a wrong key");
  await page.getByLabel("API key", { exact: true }).fill(KEY);
  await page.getByRole("button", { name: "Use key" }).click();
  await prompt.waitFor({ state: "detached" });
  await page.locator('[data-node="n1"]').waitFor();
  assert.equal(await page.evaluate(() => (globalThis as any).localStorage.getItem("tessera.apiKey")), KEY);
  await ctx.close();
});

test("the page loads without console errors and draws both nodes and their link with its RTT", async () => {
  const { page, errors } = await keyedPage();
  await page.locator('[data-node="n0"]').waitFor();
  await page.locator('[data-node="n1"]').waitFor();
  const master = (await keyed(home().url("/cluster"))).body.state.master as string;
  const masterName = master === home().id ? "n0" : "n1";
  assert.match((await page.locator(`[data-node="${masterName}"]`).textContent())!, /master/);
  const label = (await page.locator('[data-link="n0|n1"]').textContent())!;
  const shown = Number(/RTT ([\d.]+) ms/.exec(label)?.[1]);
  const links = (await keyed(home().url("/cluster/links"))).body as { rttMs: number }[];
  const slowest = Math.max(...links.map((l) => l.rttMs));
  // shown with 2 decimals under 10 ms, whole ms above
  assert.ok(Math.abs(shown - slowest) <= (slowest < 10 ? 0.006 : 0.51), `page shows RTT ${shown} ms, the API ${slowest} ms (${label})`);
  assert.match(label, /\/s/, "bandwidth is shown");
  await page.waitForTimeout(300);
  assert.deepEqual(errors, []);
  // negative control: the collector does see an error the page logs
  await page.evaluate(() => (globalThis as any).console.error("deliberate"));
  await waitFor("the deliberate error", 2000, () => (errors as string[]).includes("deliberate"));
  await page.context().close();
});

test("a pull from the page copies a model another node holds, and shows it held by both", async () => {
  assert.equal((await keyed(home().url("/models"), { method: "POST", json: { path: model, name: "small" } })).status, 201);
  const ctx = await contextWithKey(session.browser, KEY);
  const page = await ctx.newPage();
  const errors = consoleErrors(page);
  await page.goto(nodes[1]!.url("/#/models"));
  const held = page.getByTestId("model-table").locator("tr", { hasText: "small" });
  await held.waitFor();
  assert.equal(await held.locator(".badge").count(), 1, "only n0 holds it at first");
  // negative control: a name nothing knows is refused, with the node's reason on the page
  await page.getByLabel("Model to pull").fill("no-such-model-anywhere");
  await page.getByRole("button", { name: "Pull onto this node" }).click();
  await page.getByTestId("pull-error").waitFor();
  assert.equal(errors.length, 1, errors.join("; "));
  errors.length = 0;

  await page.getByLabel("Model to pull").fill("small");
  await page.getByRole("button", { name: "Pull onto this node" }).click();
  await waitFor("small held by both nodes on the page", 60000, async () => (await held.locator(".badge.ok").count()) === 2).catch(async (e) => {
    throw new Error(`${(e as Error).message}; n1's downloads: ${JSON.stringify((await keyed(nodes[1]!.url("/downloads"))).body)}; page: ${await page.locator("main").textContent()}`);
  });
  const api = (await keyed(home().url("/models"))).body.models.find((m: { id: string }) => m.id === "small");
  assert.deepEqual(api.holders.map((h: { nodeName: string; complete: boolean }) => `${h.nodeName}:${h.complete}`).sort(), ["n0:true", "n1:true"]);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("launching from the page shows plans with predictions, then progress, then ready", async () => {
  const { page, errors } = await keyedPage("#/launch");
  // negative control first: a model no node has gives an error and no plans
  await page.getByTestId("launch-model").fill("/nonexistent/model.gguf");
  await page.getByRole("button", { name: "Show plans" }).click();
  await page.getByTestId("launch-error").waitFor();
  assert.equal(await page.getByTestId("plans").count(), 0);
  assert.ok(errors.length === 1 && /404/.test(errors[0]!), `only the refused preview is logged: ${errors.join("; ")}`);
  errors.length = 0;

  await page.getByTestId("launch-model").fill("small");
  await page.getByRole("button", { name: "Show plans" }).click();
  await page.getByTestId("plans").waitFor();
  const api = (await keyed(home().url(`/instances/previews?model=small`))).body.plans as { strategy: string; feasible: boolean; predicted: { decodeTps: number }; reason?: string; ctx: number; parallel: number }[];
  const rows = page.locator("[data-plan]");
  assert.equal(await rows.count(), api.length, "one row per plan");
  for (let k = 0; k < api.length; k++) {
    const row = rows.nth(k);
    assert.equal(await row.getAttribute("data-plan"), api[k]!.strategy);
    const shown = Number(/([\d.]+) tok\/s/.exec((await row.getByTestId("predicted").textContent())!)?.[1]);
    assert.ok(Math.abs(shown - api[k]!.predicted.decodeTps) <= 0.051 * Math.max(1, api[k]!.predicted.decodeTps / 100) + 0.5, `plan ${k}: page ${shown}, API ${api[k]!.predicted.decodeTps}`);
    if (!api[k]!.feasible) assert.equal(await row.getByTestId("reason").textContent(), api[k]!.reason);
    assert.equal(await row.getByTestId("slots").textContent(), `ctx ${api[k]!.ctx} × ${api[k]!.parallel} sequence${api[k]!.parallel === 1 ? "" : "s"}`);
  }
  await screenshot(page, "launch-plans-desktop");

  // negative control: asking for 3 nodes of a 2-node cluster, every plan is rejected with the API's reason and none can be launched
  await page.getByLabel("Min nodes").fill("3");
  await page.getByRole("button", { name: "Show plans" }).click();
  await page.locator('[data-plan][data-feasible="false"]').first().waitFor();
  const rejected = (await keyed(home().url(`/instances/previews?model=small&minNodes=3`))).body.plans as { feasible: boolean; reason?: string }[];
  assert.ok(rejected.length > 0 && rejected.every((p) => !p.feasible && p.reason), JSON.stringify(rejected));
  assert.deepEqual(await page.getByTestId("reason").allTextContents(), rejected.map((p) => p.reason));
  assert.equal(await page.getByTestId("plans").getByRole("button", { name: "Launch" }).count(), 0);
  await screenshot(page, "launch-rejected-desktop");
  await page.getByLabel("Min nodes").fill("");
  await page.getByRole("button", { name: "Show plans" }).click();
  await page.locator('[data-feasible="true"]').first().waitFor();

  // Every status the instance card shows, recorded as it changes.
  await page.evaluate(() => {
    const w = globalThis as any;
    const seen: string[] = [];
    w.seen = seen;
    new w.MutationObserver(() => {
      for (const el of w.document.querySelectorAll("[data-instance]")) {
        const s = `${el.getAttribute("data-status")}:${el.querySelector(".bar") ? "bar" : ""}`;
        if (seen[seen.length - 1] !== s) seen.push(s);
      }
    }).observe(w.document.body, { subtree: true, childList: true, attributes: true });
  });
  const first = page.locator('[data-feasible="true"]').first();
  const strategy = await first.getAttribute("data-plan");
  const slots = Number(/× (\d+)/.exec((await first.getByTestId("slots").textContent())!)![1]);
  await first.getByRole("button", { name: "Launch" }).click();
  await page.waitForURL(/#\/instances$/);
  const card = page.locator("[data-instance]");
  await card.and(page.locator('[data-status="ready"]')).waitFor({ timeout: 90000 });
  const seen = (await page.evaluate(() => (globalThis as any).seen)) as string[];
  assert.equal(seen[seen.length - 1], "ready:");
  assert.ok(seen.some((s) => s.startsWith("starting:bar")), `progress shown before ready: ${seen.join(" → ")}`);
  const id = (await card.getAttribute("data-instance"))!;
  const inst = (await keyed(home().url(`/instances/${id}`))).body;
  assert.equal(inst.status, "ready");
  assert.equal(inst.strategy, strategy);
  assert.equal(inst.parallel, slots, "launched with the sequences its plan showed");
  assert.equal(inst.model, "small", "launched by its registry name");
  assert.deepEqual(errors, []);
  await page.context().close();
});

async function chatOnce(page: Page, text: string): Promise<void> {
  await page.getByTestId("chat-input").fill(text);
  await page.getByTestId("chat-input").press("Enter");
}

test("chat streams an answer and shows TTFT and tok/s, from a --model and from the launched instance; the stop button cuts an answer short", async () => {
  const { page, errors } = await keyedPage("#/chat");
  const served = (await keyed(home().url("/v1/models"))).body.data.map((m: { id: string }) => m.id) as string[];
  await waitFor("the model list", 5000, async () => (await page.getByTestId("chat-model").locator("option").count()) === served.length);
  const modelId = served.find((m) => m.startsWith("small"))!;
  await page.getByTestId("chat-model").selectOption(modelId);
  await page.getByLabel("Temperature").fill("0");
  await page.getByLabel("Max tokens").fill("24");
  const streamed: boolean[] = [];
  page.on("request", (r) => {
    if (r.url().endsWith("/v1/chat/completions")) streamed.push(JSON.parse(r.postData()!).stream === true);
  });
  await chatOnce(page, "Hello there");
  const stats = page.getByTestId("chat-stats");
  await stats.waitFor({ timeout: 60000 });
  const line = (await stats.textContent())!;
  assert.match(line, /TTFT [\d.]+ m?s · \d+ tokens · [\d.]+ tok\/s/);
  assert.deepEqual(streamed, [true]);
  // The page's answer, assembled from the stream, is what the API answers unstreamed for the same request.
  conversations = (await page.evaluate(() => (globalThis as any).localStorage.getItem("tessera.conversations"))) as string;
  const saved = JSON.parse(conversations) as { turns: { role: string; content: string }[] }[];
  const answer = saved[0]!.turns[1]!.content;
  const direct = (await keyed(home().url("/v1/chat/completions"), { method: "POST", json: { model: modelId, messages: [{ role: "user", content: "Hello there" }], temperature: 0, top_p: 0.95, max_tokens: 24 } })).body;
  assert.equal(answer, direct.choices[0].message.content);
  assert.equal(Number(/(\d+) tokens/.exec(line)![1]), direct.usage.completion_tokens);
  // negative control: an answer stopped early has no stats line, and says so
  await page.getByLabel("Max tokens").fill("3000");
  // a slow network (2 kB/s) keeps this answer streaming until the click
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: 2000, uploadThroughput: -1 });
  await chatOnce(page, "Tell me a long story");
  await page.locator('[data-role="assistant"]').nth(1).locator("p").first().waitFor();
  await page.getByRole("button", { name: "Stop" }).click();
  await page.locator('[data-role="assistant"]').nth(1).getByText("stopped").waitFor();
  assert.equal(await page.getByTestId("chat-stats").count(), 1);
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

  // The instance launched from the page serves its registry name through the same API: a new
  // conversation with it answers what the single-process --model serving of the same file answers.
  assert.equal(((await keyed(home().url("/instances"))).body as { model: string; status: string }[]).filter((i) => i.model === "small" && i.status === "ready").length, 1);
  await page.getByRole("button", { name: "New chat" }).click();
  await page.getByTestId("chat-model").selectOption("small");
  await page.getByLabel("Max tokens").fill("24");
  await chatOnce(page, "Hello there");
  await page.getByTestId("chat-stats").waitFor({ timeout: 60000 });
  const fromInstance = JSON.parse((await page.evaluate(() => (globalThis as any).localStorage.getItem("tessera.conversations"))) as string) as { model: string; turns: { content: string }[] }[];
  assert.equal(fromInstance[0]!.model, "small");
  assert.equal(fromInstance[0]!.turns[1]!.content, direct.choices[0].message.content);
  await screenshot(page, "chat-answer-desktop");
  assert.deepEqual(errors, []);
  await page.context().close();
});

test("model text is rendered as markdown and never as HTML", async () => {
  const hostile = [
    "Some **bold** and `code` and [a link](https://example.com/x) and [bad](javascript:alert(1))",
    "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>",
    "```js",
    "if (a < b) { console.log('<b>not bold</b>'); }",
    "```",
    "- one",
    "- two",
  ].join("\n");
  const stored = JSON.stringify([{ id: "c1", title: "t", model: "small", turns: [{ role: "user", content: "<i>hi</i>" }, { role: "assistant", content: hostile }] }]);
  const ctx = await contextWithKey(session.browser, KEY);
  await ctx.addInitScript((c) => (globalThis as any).localStorage.setItem("tessera.conversations", c), stored);
  const page = await ctx.newPage();
  const errors = consoleErrors(page);
  await page.goto(home().url("/#/chat"));
  const answer = page.locator('[data-role="assistant"]');
  await answer.waitFor();
  // markdown is parsed: bold, inline code, a code block, a list, an http link
  assert.equal(await answer.locator("strong").first().textContent(), "bold");
  assert.equal(await answer.locator("pre code").textContent(), "if (a < b) { console.log('<b>not bold</b>'); }");
  assert.equal(await answer.locator("li").count(), 2);
  assert.equal(await answer.locator('a[href="https://example.com/x"]').count(), 1);
  // ...and HTML is not: no element from the text, the tags shown as text, no javascript: link
  assert.equal(await answer.locator("img, script, b").count(), 0);
  assert.equal(await page.locator('[data-role="user"] i').count(), 0);
  assert.match((await answer.textContent())!, /<img src=x onerror=/);
  assert.equal(await answer.locator('a[href^="javascript"]').count(), 0);
  assert.notEqual(await page.title(), "pwned");
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("screenshots of every view at desktop and phone size, light and dark", async () => {
  for (const size of ["desktop", "phone"] as const) {
    const { page, errors } = await keyedPage("", size);
    await page.evaluate((c) => (globalThis as any).localStorage.setItem("tessera.conversations", c), conversations);
    for (const view of ["cluster", "instances", "launch", "models", "chat", "connect"]) {
      await page.goto(home().url(`/#/${view}`));
      await page.getByTestId("connection").filter({ hasText: "live" }).waitFor();
      if (view === "cluster") await page.locator('[data-link="n0|n1"]').waitFor();
      if (view === "instances") await page.locator('[data-status="ready"]').waitFor();
      if (view === "chat") await page.getByTestId("chat-stats").waitFor();
      if (view === "connect") assert.match((await page.getByTestId("snippet-claude").textContent())!, new RegExp(`ANTHROPIC_BASE_URL=http://127\\.0\\.0\\.1:${home().http}`));
      await page.waitForTimeout(150);
      await screenshot(page, `${view}-${size}`);
      if (size === "desktop" && (view === "cluster" || view === "chat" || view === "instances")) {
        await page.emulateMedia({ colorScheme: "dark" });
        await screenshot(page, `${view}-${size}-dark`);
        await page.emulateMedia({ colorScheme: "light" });
      }
    }
    assert.deepEqual(errors, [], size);
    await page.context().close();
  }
});

test("stopping the instance from the page removes it", async () => {
  const { page, errors } = await keyedPage("#/instances");
  const card = page.locator("[data-instance]");
  await card.waitFor();
  assert.equal((await keyed(home().url("/instances"))).body.length, 1);
  await card.getByRole("button", { name: /Stop instance/ }).click();
  await page.getByTestId("no-instances").waitFor();
  assert.deepEqual((await keyed(home().url("/instances"))).body, []);
  assert.deepEqual(errors, []);
  await page.context().close();
});

test("a node killed while the page watches is shown as lost", async () => {
  const { page } = await keyedPage();
  const n1 = page.locator('[data-node="n1"]');
  await n1.waitFor();
  assert.equal(await n1.getAttribute("data-state"), "live");
  assert.match((await page.locator('[data-link="n0|n1"]').textContent())!, /RTT/);
  await nodes[1]!.kill();
  await page.locator('[data-node="n1"][data-state="lost"]').waitFor({ timeout: 30000 });
  assert.match((await page.locator('[data-link="n0|n1"]').textContent())!, /link lost/);
  assert.equal(await page.locator('[data-node="n0"]').getAttribute("data-state"), "live");
  await screenshot(page, "cluster-lost-desktop");
  await page.context().close();
});
