import type { ChatMessage } from "../../models/types.js";
import { bad, isObject } from "../http/fields.js";

const UNSUPPORTED_PARTS = new Set(["image_url", "input_image", "image", "input_audio", "audio", "file", "input_file", "video_url"]);
const TEXT_PARTS = new Set(["text", "input_text", "output_text"]);

/**
 * The text of an OpenAI content value: a string, null, or an array of parts (text parts joined by
 * newlines). Media parts are refused: this node serves text models.
 */
export function contentText(content: unknown, param: string): string {
  if (typeof content === "string") return content;
  if (content === null || content === undefined) return "";
  if (!Array.isArray(content)) throw bad(param, "must be a string or an array of content parts");
  const texts: string[] = [];
  content.forEach((part, j) => {
    const p = `${param}[${j}]`;
    if (!isObject(part) || typeof part.type !== "string") throw bad(p, "must be a content part with a type");
    if (TEXT_PARTS.has(part.type)) {
      if (typeof part.text !== "string") throw bad(`${p}.text`, "must be a string");
      texts.push(part.text);
    } else if (part.type === "refusal") {
      if (typeof part.refusal !== "string") throw bad(`${p}.refusal`, "must be a string");
      texts.push(part.refusal);
    } else if (UNSUPPORTED_PARTS.has(part.type)) {
      throw bad(p, `${part.type} input is not supported: this node serves text-only models`);
    } else {
      throw bad(`${p}.type`, `unknown content part type '${part.type}'`);
    }
  });
  return texts.join("\n");
}

/** Tool calls an assistant made, as text the template shows the model (one JSON object per call). */
function toolCallsText(calls: unknown, param: string): string {
  if (calls === undefined || calls === null) return "";
  if (!Array.isArray(calls)) throw bad(param, "must be an array");
  return calls
    .map((c, i) => {
      const fn = isObject(c) && isObject(c.function) ? c.function : undefined;
      if (!fn || typeof fn.name !== "string") throw bad(`${param}[${i}].function.name`, "must be a string");
      return JSON.stringify({ name: fn.name, arguments: typeof fn.arguments === "string" ? fn.arguments : JSON.stringify(fn.arguments ?? {}) });
    })
    .join("\n");
}

/** Chat completion messages → canonical chat messages (developer → system; function → tool). */
export function chatMessages(value: unknown, param = "messages"): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) throw bad(param, "must be a non-empty array of messages");
  return value.map((m, i) => {
    const p = `${param}[${i}]`;
    if (!isObject(m)) throw bad(p, "must be an object with a role");
    const content = contentText(m.content, `${p}.content`);
    switch (m.role) {
      case "system":
      case "developer":
        return { role: "system", content };
      case "user":
        return { role: "user", content };
      case "assistant": {
        const calls = toolCallsText(m.tool_calls, `${p}.tool_calls`);
        return { role: "assistant", content: calls ? (content ? `${content}\n${calls}` : calls) : content };
      }
      case "tool":
      case "function":
        return { role: "tool", content };
      default:
        throw bad(`${p}.role`, `must be system, developer, user, assistant or tool, got ${JSON.stringify(m.role) ?? "nothing"}`);
    }
  });
}
