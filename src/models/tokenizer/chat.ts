import { Template } from "@huggingface/jinja";
import { TesseraError } from "../../errors.js";
import type { ChatMessage } from "../types.js";

/**
 * ChatML, used when a model ships no template. It is what Qwen and many fine-tunes use, so a model
 * with <|im_start|>/<|im_end|> tokens gets prompts in the shape it was trained on.
 */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface ChatTemplateOptions {
  bosToken?: string;
  eosToken?: string;
  /** Where the template came from, for error messages. */
  origin?: string;
}

/** A parsed Jinja chat template; parsing happens once, rendering per request. */
export class ChatTemplate {
  readonly source: string;
  readonly isDefault: boolean;
  private readonly template: Template;
  private readonly bosToken: string;
  private readonly eosToken: string;
  private readonly origin: string;

  constructor(source: string | undefined, opts: ChatTemplateOptions = {}) {
    this.isDefault = !source;
    this.source = source || CHATML_TEMPLATE;
    this.origin = opts.origin ?? "chat template";
    this.bosToken = opts.bosToken ?? "";
    this.eosToken = opts.eosToken ?? "";
    try {
      this.template = new Template(this.source);
    } catch (e) {
      throw new TesseraError(`cannot parse the chat template: ${(e as Error).message}`, this.origin, { cause: e });
    }
  }

  render(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean; extra?: Record<string, unknown> } = {}): string {
    try {
      return this.template.render({
        ...opts.extra,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: opts.addGenerationPrompt ?? true,
        bos_token: this.bosToken,
        eos_token: this.eosToken,
      });
    } catch (e) {
      throw new TesseraError(`cannot render the chat template: ${(e as Error).message}`, this.origin, { cause: e });
    }
  }
}

/** tokenizer_config.json's chat_template may be a string or a list of named templates. */
export function pickChatTemplate(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.filter((t): t is { name: string; template: string } => typeof t?.name === "string" && typeof t?.template === "string");
    return (named.find((t) => t.name === "default") ?? named[0])?.template;
  }
  return undefined;
}
