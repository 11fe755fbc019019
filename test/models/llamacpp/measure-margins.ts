/**
 * Not a test: measures how peaked synthetic models are in llama.cpp. For each GGUF given, greedy-decodes
 * STEPS tokens after a fixed prompt and prints the median and smallest top-1/top-2 logit margin, how many
 * distinct tokens came out, and for how many steps each file agrees with the first one.
 *   npx tsx test/models/llamacpp/measure-margins.ts a.gguf b.gguf ...   (STEPS=32 by default)
 */
import { greedy, llama, median, withModel } from "./llama.js";

const STEPS = Number(process.env.STEPS ?? 32);

async function run(files: string[]): Promise<void> {
  let first: number[] | undefined;
  for (const f of files) {
    await withModel(f, async (model) => {
      const prompt = Array.from(model.tokenize("The quick brown fox jumps over the lazy dog. Hello world!"));
      const r = await greedy(model, prompt, STEPS);
      first ??= r.tokens;
      let agree = 0;
      while (agree < STEPS && r.tokens[agree] === first[agree]) agree++;
      const min = Math.min(...r.margins);
      console.log(
        `${f}: median margin ${median(r.margins).toFixed(2)}, min ${min.toFixed(2)}, distinct ${new Set(r.tokens).size}/${STEPS}, ` +
          `agrees with the first file for ${agree} steps: ${JSON.stringify(model.detokenize(r.tokens.slice(0, 12) as never))}`,
      );
    });
  }
  await (await llama()).dispose();
}

void run(process.argv.slice(2));
