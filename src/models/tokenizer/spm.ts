/**
 * SentencePiece-style merging as llama.cpp does it for `tokenizer.ggml.model = "llama"`: start from
 * UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is a vocabulary piece with
 * the highest score (leftmost on ties); a leftover character that is not a piece becomes byte tokens.
 */
export interface SpmVocab {
  /** piece text → id, for every token. */
  lookup(text: string): number | undefined;
  score(id: number): number;
  /** The <0xNN> token for a byte. */
  byteToken(byte: number): number;
}

interface Candidate {
  left: number;
  right: number;
  score: number;
  /** Length (UTF-16 units) of the pair when queued; a changed length means it is stale. */
  size: number;
}

const utf8 = new TextEncoder();

export function spmTokenize(text: string, vocab: SpmVocab, out: number[]): void {
  const chars = Array.from(text);
  const n = chars.length;
  if (n === 0) return;
  const start = new Array<number>(n);
  const len = new Array<number>(n);
  const prev = new Array<number>(n);
  const next = new Array<number>(n);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    start[i] = pos;
    len[i] = chars[i]!.length;
    pos += len[i]!;
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  const heap = new CandidateHeap();
  const tryAdd = (l: number, r: number) => {
    if (l < 0 || r < 0) return;
    const piece = text.slice(start[l]!, start[l]! + len[l]! + len[r]!);
    const id = vocab.lookup(piece);
    if (id === undefined) return;
    heap.push({ left: l, right: r, score: vocab.score(id), size: piece.length });
  };
  for (let i = 1; i < n; i++) tryAdd(i - 1, i);

  for (let c = heap.pop(); c; c = heap.pop()) {
    const { left, right } = c;
    if (len[left] === 0 || len[right] === 0 || len[left]! + len[right]! !== c.size) continue;
    len[left] = len[left]! + len[right]!;
    len[right] = 0;
    next[left] = next[right]!;
    if (next[right]! >= 0) prev[next[right]!] = left;
    tryAdd(prev[left]!, left);
    tryAdd(left, next[left]!);
  }

  for (let i = 0; i !== -1; i = next[i]!) {
    const piece = text.slice(start[i]!, start[i]! + len[i]!);
    const id = vocab.lookup(piece);
    if (id !== undefined) out.push(id);
    else for (const b of utf8.encode(piece)) out.push(vocab.byteToken(b));
  }
}

/** Max-heap on score, then min on left index. */
class CandidateHeap {
  private readonly items: Candidate[] = [];

  private before(a: Candidate, b: Candidate): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(c: Candidate): void {
    const h = this.items;
    h.push(c);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): Candidate | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
