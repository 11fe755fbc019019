import { isTesseraError } from "../errors.js";
import type { ChatMessage, Tokenizer } from "../models/types.js";
import { InferenceError } from "./errors.js";
import type { PromptInput } from "./request.js";

/**
 * A request's input as prompt tokens, on the node that holds the model's tokenizer. Chat messages go
 * through the chat template (which writes bos itself where the model wants one); text is encoded
 * with the tokenizer's own special tokens (bos); tokens pass as they are.
 */
export function promptTokens(input: Readonly<PromptInput>, tokenizer: Tokenizer | undefined): number[] {
  if (input.kind === "tokens") return [...input.tokens];
  if (!tokenizer) throw new InferenceError("invalid_request", "this model has no tokenizer: send prompt tokens", { param: "prompt" });
  if (input.kind === "text") return tokenizer.encode(input.text, { addSpecial: true });
  return tokenizer.encode(renderChat(tokenizer, input.messages));
}

/**
 * Renders chat messages with the model's template. Some templates refuse a system message that is
 * not the first one (clients such as Claude Code send them mid-conversation): then every system
 * message is folded into one leading system message, in order, and the template gets that.
 */
export function renderChat(tokenizer: Pick<Tokenizer, "applyChatTemplate">, messages: readonly ChatMessage[]): string {
  try {
    return tokenizer.applyChatTemplate([...messages], { addGenerationPrompt: true });
  } catch (e) {
    const folded = foldSystemMessages(messages);
    if (folded && isTesseraError(e)) {
      try {
        return tokenizer.applyChatTemplate(folded, { addGenerationPrompt: true });
      } catch {
        // report the first error: it is about what the client sent
      }
    }
    throw new InferenceError("invalid_request", isTesseraError(e) ? e.message : `cannot render the chat template: ${String(e)}`, { param: "messages", cause: e });
  }
}

/** All system messages joined into one at the front; undefined when there is nothing to fold. */
export function foldSystemMessages(messages: readonly ChatMessage[]): ChatMessage[] | undefined {
  const system = messages.filter((m) => m.role === "system");
  const laterSystem = messages.findIndex((m, i) => m.role === "system" && i > 0);
  if (laterSystem < 0) return undefined;
  const rest = messages.filter((m) => m.role !== "system");
  return [{ role: "system", content: system.map((m) => m.content).join("\n\n") }, ...rest];
}
