/**
 * GPT-2's reversible map between bytes and printable characters: byte-level BPE vocabularies
 * (tokenizer.json, GGUF "gpt2") store every token as a string of these characters, one per byte.
 * Printable Latin-1 bytes map to themselves; the other 68 bytes map to U+0100 onwards, in byte order.
 */

function buildTables(): { toChar: string[]; toByte: Map<string, number> } {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const toChar: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) toChar[b] = String.fromCodePoint(printable(b) ? b : next++);
  const toByte = new Map<string, number>();
  toChar.forEach((c, b) => toByte.set(c, b));
  return { toChar, toByte };
}

const { toChar, toByte } = buildTables();

const utf8 = new TextEncoder();

/** UTF-8 bytes of `text`, each written as its byte-level character. */
export function byteLevelEncode(text: string): string {
  let out = "";
  for (const b of utf8.encode(text)) out += toChar[b];
  return out;
}

/** Bytes of a byte-level token string; characters outside the table are taken as UTF-8 text. */
export function byteLevelBytes(token: string, out: number[]): void {
  for (const ch of token) {
    const b = toByte.get(ch);
    if (b !== undefined) out.push(b);
    else for (const x of utf8.encode(ch)) out.push(x);
  }
}

export function byteLevelChar(byte: number): string {
  return toChar[byte]!;
}
