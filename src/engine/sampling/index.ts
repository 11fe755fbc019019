export { Sampler, type SampleResult, type TokenLogprob, type TokenLogprobs } from "./sampler.js";
export { hasPenalties, type ResolvedSamplingParams } from "./params.js";
export { Prng, randomSeed } from "./prng.js";
export { topIndices, argmax, logSumExp } from "./select.js";
