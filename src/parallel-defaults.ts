/** Sequences a model decodes together when nobody says: local models, and cluster instances as far as memory allows. */
export const DEFAULT_PARALLEL = 4;

/**
 * Batching is a luxury: KV slots past the first are allocated only while the model and all its
 * slots stay within this share of the memory free for it (the rest stays for the system and other
 * models). One slot only needs to fit.
 */
export const BATCH_MEMORY_SHARE = 0.75;
