import type { Tokenizer } from "../models/types.js";

/** U+FFFD: what a decoder writes for bytes that do not (yet) form a whole UTF-8 character. */
const REPLACEMENT = "\uFFFD";

/** How many earlier tokens to decode along with the new ones (enough context for "▁" spaces and merges). */
const CONTEXT_TOKENS = 4;

/**
 * Turns a token stream into text increments. It decodes a short window (a few tokens before the
 * ones not yet shown, plus those) and emits what the window adds over its context, so:
 *  - a character split over several byte tokens appears once all its bytes are there, never as
 *    U+FFFD halves (an increment ending in U+FFFD is held until more tokens arrive);
 *  - tokenizers whose pieces decode differently at the start of a text (SentencePiece "▁") get
 *    the right spaces, because the window always starts with context.
 * Cost per token: two decodes of a few tokens. Special tokens are skipped.
 */
export class StreamDetokenizer {
  private readonly tokens: number[] = [];
  /** tokens[prefix..read) is context already shown; tokens[read..] not shown yet. */
  private prefix = 0;
  private read = 0;

  /** `context`: the tokens before the first pushed one (e.g. the prompt's tail). */
  constructor(private readonly tokenizer: Tokenizer, context: readonly number[] = []) {
    const tail = context.slice(-CONTEXT_TOKENS);
    this.tokens.push(...tail);
    this.read = tail.length;
  }

  /** Adds one token; returns the new text it completes ("" while a character is incomplete). */
  push(token: number): string {
    this.tokens.push(token);
    return this.emit(false);
  }

  /** The text still held back (a trailing incomplete character comes out as U+FFFD). */
  flush(): string {
    return this.emit(true);
  }

  private emit(final: boolean): string {
    if (this.read >= this.tokens.length) return "";
    const shown = this.decode(this.prefix, this.read);
    const all = this.decode(this.prefix, this.tokens.length);
    if (all.length <= shown.length || !all.startsWith(shown)) {
      if (!final) return "";
      // The window decodes inconsistently (a tokenizer that rewrites earlier text): emit what is
      // new relative to the shown part by length; rare and only at the very end.
      this.advance();
      return all.slice(shown.length);
    }
    if (!final && all.endsWith(REPLACEMENT)) return "";
    this.advance();
    return all.slice(shown.length);
  }

  private advance(): void {
    this.read = this.tokens.length;
    this.prefix = Math.max(0, this.read - CONTEXT_TOKENS);
    // Keep the array short: drop what no window will look at again.
    if (this.prefix > 64) {
      this.tokens.splice(0, this.prefix);
      this.read -= this.prefix;
      this.prefix = 0;
    }
  }

  private decode(from: number, to: number): string {
    return from >= to ? "" : this.tokenizer.decode(this.tokens.slice(from, to), { skipSpecial: true });
  }
}
