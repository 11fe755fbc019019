// Known bugs for scripts/mutate.js: each replaces one exact piece of text in a built file under dist/
// and names the test files (substrings of dist/test paths) that must catch it. Keep `find` short and
// exact; when the code it targets changes, the script reports the mutation "stale".
export const MUTATIONS = [
  {
    id: "rope-freqs-not-loaded",
    what: "GGUF rope_freqs.weight is never loaded",
    file: "src/engine/weights/load.js",
    find: `return src.info("rope_freqs.weight") ? vector(src, "rope_freqs.weight") : undefined;`,
    replace: `return undefined;`,
    tests: ["engine/core/decoder.test", "engine/core/rope.test", "engine/parity/llamacpp.test"],
    namePattern: "rope",
  },
  {
    id: "rope-freqs-not-divided",
    what: "rope_freqs factors do not divide the frequencies",
    file: "src/engine/graph/rope.js",
    find: "inv[i] /= freqFactors[i];",
    replace: "inv[i] /= 1;",
    tests: ["engine/core/decoder.test", "engine/core/rope.test"],
  },
  {
    id: "llama3-scaling-off",
    what: "llama3 rope scaling branch disabled",
    file: "src/engine/graph/rope.js",
    find: `if (s?.kind === "llama3") {`,
    replace: "if (false) {",
    tests: ["engine/core/decoder.test", "engine/core/rope.test"],
  },
  {
    id: "staging-always-memory",
    what: "shards never stage weights on disk (memory mode forced)",
    file: "src/engine/session/shard.js",
    find: "WeightStaging.open(shardWeightBytes(source, [a, b]), opts.staging)",
    replace: `WeightStaging.open(shardWeightBytes(source, [a, b]), { mode: "memory" })`,
    tests: ["engine/core/staging.test"],
  },
  {
    id: "seed-ignored",
    what: "the request's seed is reported but a random one draws the tokens",
    file: "src/engine/generate.js",
    find: "resolveSamplingParams(pickSampling(req), seed)",
    replace: "resolveSamplingParams(pickSampling(req), randomSeed())",
    tests: ["engine/generate/cli.test"],
    namePattern: "same seed",
  },
  {
    id: "seed-constant",
    what: "the sampler seeds its PRNG with 0 whatever the request says",
    file: "src/engine/sampling/sampler.js",
    find: "new Prng(params.seed)",
    replace: "new Prng(0)",
    tests: ["engine/generate/cli.test"],
    namePattern: "same seed",
  },
];
