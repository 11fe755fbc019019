/**
 * Splits text at special tokens before the model's own tokenizer sees it, as llama.cpp does:
 * tokens are tried longest first, each one cutting every text fragment at all of its occurrences.
 * Control tokens are matched only when parsing specials; user-defined (added, non-special) tokens always.
 */
export interface SpecialToken {
  id: number;
  text: string;
  control: boolean;
}

/** A fragment is either raw text or a token id. */
export type Fragment = string | number;

export class SpecialSplitter {
  private readonly tokens: SpecialToken[];

  constructor(tokens: SpecialToken[]) {
    this.tokens = tokens.filter((t) => t.text.length > 0).sort((a, b) => utf8Length(b.text) - utf8Length(a.text) || a.id - b.id);
  }

  split(text: string, parseSpecial: boolean): Fragment[] {
    let fragments: Fragment[] = [text];
    for (const tok of this.tokens) {
      if (tok.control && !parseSpecial) continue;
      const next: Fragment[] = [];
      for (const f of fragments) {
        if (typeof f !== "string" || !f.includes(tok.text)) {
          next.push(f);
          continue;
        }
        let start = 0;
        for (let at = f.indexOf(tok.text); at >= 0; at = f.indexOf(tok.text, start)) {
          if (at > start) next.push(f.slice(start, at));
          next.push(tok.id);
          start = at + tok.text.length;
        }
        if (start < f.length) next.push(f.slice(start));
      }
      fragments = next;
    }
    return fragments.filter((f) => f !== "");
  }
}

const encoder = new TextEncoder();
function utf8Length(s: string): number {
  return encoder.encode(s).length;
}
