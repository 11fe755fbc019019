import type { ChatMessage, Tokenizer } from "../types.js";
import type { ChatTemplate } from "./chat.js";
import { SpecialSplitter, type Fragment, type SpecialToken } from "./special.js";

export interface EncodeOptions {
  /** Prepend bos (and append eos) where the model's tokenizer does so. */
  addSpecial?: boolean;
  /** Treat control-token text (e.g. "<|im_start|>") as that token; default true, as chat prompts need it. */
  parseSpecial?: boolean;
}

export interface SpecialIds {
  bosId?: number;
  eosId?: number;
  stopIds: number[];
  addBos: boolean;
  addEos: boolean;
}

/**
 * What every vocabulary-backed tokenizer shares: special-token splitting, bos/eos, stop ids, chat
 * template and byte-wise decoding. Subclasses encode plain text fragments and give each token's bytes.
 */
export abstract class VocabTokenizer implements Tokenizer {
  readonly bosId?: number;
  readonly eosId?: number;
  readonly stopIds: number[];
  protected readonly addBos: boolean;
  protected readonly addEos: boolean;
  private readonly splitter: SpecialSplitter;
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });

  constructor(
    readonly vocabSize: number,
    specials: SpecialToken[],
    ids: SpecialIds,
    readonly chatTemplate: ChatTemplate,
  ) {
    this.bosId = ids.bosId;
    this.eosId = ids.eosId;
    this.stopIds = [...new Set(ids.stopIds)];
    this.addBos = ids.addBos;
    this.addEos = ids.addEos;
    this.splitter = new SpecialSplitter(specials);
  }

  abstract idToPiece(id: number): string;
  /** Appends the ids for fragments of raw text; `afterSpecial` says a token (or the start) precedes it. */
  protected abstract encodeText(text: string, afterSpecial: boolean, out: number[]): void;
  /** Appends the bytes id stands for; false for ids that decode to nothing unless special tokens are kept. */
  protected abstract tokenBytes(id: number, out: number[], skipSpecial: boolean): void;
  /** Whether decoding drops one leading space (SentencePiece's add-space-prefix). */
  protected stripLeadingSpace(): boolean {
    return false;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.addSpecial && this.addBos && this.bosId !== undefined) out.push(this.bosId);
    let afterSpecial = true;
    for (const f of this.split(text, opts.parseSpecial ?? true)) {
      if (typeof f === "number") {
        out.push(f);
        afterSpecial = true;
      } else {
        this.encodeText(f, afterSpecial, out);
        afterSpecial = false;
      }
    }
    if (opts.addSpecial && this.addEos && this.eosId !== undefined) out.push(this.eosId);
    return out;
  }

  protected split(text: string, parseSpecial: boolean): Fragment[] {
    return text === "" ? [] : this.splitter.split(text, parseSpecial);
  }

  decode(ids: number[], opts: { skipSpecial?: boolean } = {}): string {
    const bytes: number[] = [];
    for (const id of ids) this.tokenBytes(id, bytes, opts.skipSpecial ?? false);
    let text = this.decoder.decode(Uint8Array.from(bytes));
    if (this.stripLeadingSpace() && text.startsWith(" ")) text = text.slice(1);
    return text;
  }

  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    return this.chatTemplate.render(messages, opts);
  }
}

/** Token texts that end a turn in common chat formats; a control token with one of these stops generation. */
export const END_OF_TURN_TEXTS = new Set(["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>"]);
