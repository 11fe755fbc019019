import { Tokenizer as HfLibTokenizer } from "@huggingface/tokenizers";
import { TesseraError } from "../../errors.js";
import type { ChatMessage, Tokenizer } from "../types.js";
import { END_OF_TURN_TEXTS, type EncodeOptions } from "./base.js";
import { ChatTemplate, pickChatTemplate } from "./chat.js";

/**
 * A Hugging Face tokenizer.json (through @huggingface/tokenizers) with the special tokens and chat
 * template that tokenizer_config.json, generation_config.json and config.json describe.
 */
export interface HfTokenizerFiles {
  /** Parsed tokenizer.json. */
  tokenizer: unknown;
  tokenizerConfig?: unknown;
  generationConfig?: unknown;
  modelConfig?: unknown;
  /** The folder or file these came from, for messages. */
  origin: string;
}

function record(v: unknown): Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** tokenizer_config.json writes special tokens as strings or as {content: "..."} objects. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  const c = record(v).content;
  return typeof c === "string" ? c : undefined;
}

function idList(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

export class HfTokenizer implements Tokenizer {
  readonly kind = "hf";
  readonly vocabSize: number;
  readonly bosId?: number;
  readonly eosId?: number;
  readonly stopIds: number[];
  readonly chatTemplate: ChatTemplate;
  private readonly lib: HfLibTokenizer;
  private readonly addBos: boolean;

  constructor(files: HfTokenizerFiles) {
    const json = record(files.tokenizer);
    if (!json.model) throw new TesseraError("tokenizer.json has no 'model'", files.origin);
    const cfg = record(files.tokenizerConfig);
    try {
      this.lib = new HfLibTokenizer(json, cfg);
    } catch (e) {
      throw new TesseraError(`cannot load tokenizer.json: ${(e as Error).message}`, files.origin, { cause: e });
    }
    const vocab = this.lib.get_vocab(true);
    let max = -1;
    for (const id of vocab.values()) if (id > max) max = id;
    this.vocabSize = max + 1;

    const idOf = (text: string | undefined) => (text === undefined ? undefined : this.lib.token_to_id(text));
    const bosText = tokenText(cfg.bos_token);
    const eosText = tokenText(cfg.eos_token);
    const gen = record(files.generationConfig);
    const model = record(files.modelConfig);
    this.bosId = idOf(bosText) ?? idList(gen.bos_token_id)[0] ?? idList(model.bos_token_id)[0];
    const eosIds = [idOf(eosText), ...idList(gen.eos_token_id), ...idList(model.eos_token_id)].filter((x): x is number => x !== undefined);
    this.eosId = eosIds[0];
    for (const [id, tok] of this.lib.get_added_tokens_decoder()) {
      if (tok.special && END_OF_TURN_TEXTS.has(tok.content)) eosIds.push(id);
    }
    this.stopIds = [...new Set(eosIds)];
    // Llama-style configs say add_bos_token; the post-processor in tokenizer.json is what actually adds it.
    this.addBos = cfg.add_bos_token !== false;
    this.chatTemplate = new ChatTemplate(pickChatTemplate(cfg.chat_template), {
      bosToken: bosText ?? (this.bosId !== undefined ? this.lib.id_to_token(this.bosId) : undefined),
      eosToken: eosText ?? (this.eosId !== undefined ? this.lib.id_to_token(this.eosId) : undefined),
      origin: `${files.origin} (chat_template)`,
    });
  }

  idToPiece(id: number): string {
    return this.lib.id_to_token(id) ?? "";
  }

  /** Added tokens are always matched as whole tokens here (parseSpecial is not supported on this path). */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (text === "") return opts.addSpecial && this.addBos && this.bosId !== undefined ? [this.bosId] : [];
    return this.lib.encode(text, { add_special_tokens: opts.addSpecial ?? false }).ids;
  }

  decode(ids: number[], opts: { skipSpecial?: boolean } = {}): string {
    return this.lib.decode(ids, { skip_special_tokens: opts.skipSpecial ?? false, clean_up_tokenization_spaces: false });
  }

  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    return this.chatTemplate.render(messages, opts);
  }
}
