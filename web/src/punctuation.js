// The punctuation a typist leaves out, inferred: the Python runtime's runtime/punctuation.py,
// with the same contexts and distributions (PUNCTUATION_CANDIDATES, PUNCTUATION_MIN_PROB are
// generated from Python).
//
//   after a word, state s, l = ln P(. | s): the PUNCTUATION_CANDIDATES marks p of largest l[p]
//   with P > PUNCTUATION_MIN_PROB are branches (s_p = advance(s, p), l_p its distribution)
//   ranked:      P(w) = P(w | s) + sum_p P(p | s) P(w | s, p)   what suggestions rank with
//   restoration: a word w right after a word goes on from the s_p of largest l[p] + l_p[w]
//                when that beats l[w] (ties: s)
// Nothing is inferred at the start of a text or next to a mark the user typed.

import { PUNCTUATION_CANDIDATES, PUNCTUATION_MIN_PROB } from './constants.js';

/** A vocabulary special like <unk> or <eos>. */
export function isSpecial(entry) {
  return entry.length > 2 && entry.startsWith('<') && entry.endsWith('>');
}

/** A vocabulary entry with no letter or digit that is not a special (, . ;). */
export function isPunctuation(entry) {
  return entry.length > 0 && !isSpecial(entry) && !/[\p{L}\p{N}]/u.test(entry);
}

/** ln(e^a + e^b), as numpy's logaddexp. */
function logAddExp(a, b) {
  if (a === b) return a + Math.LN2;
  const d = a - b;
  return d > 0 ? a + Math.log1p(Math.exp(-d)) : b + Math.log1p(Math.exp(d));
}

/**
 * Contexts of a LanguageModel advanced token by token with the left-out marks inferred:
 * {state, logprobs, branches: [{mark, state, logprobs}], ranked}; `infer` false: plain contexts.
 */
export class PunctuationInference {
  constructor(lm, vocabulary, infer = true) {
    this.lm = lm;
    this.infer = Boolean(infer);
    this.isMark = Uint8Array.from(vocabulary, (w) => (isPunctuation(w) ? 1 : 0));
    this.marks = vocabulary.flatMap((w, i) => (isPunctuation(w) ? [i] : []));
    this.threshold = Math.log(PUNCTUATION_MIN_PROB);
  }

  /** The context at the start of a text (nothing inferred there). */
  async begin() {
    return this._context(await this.lm.begin(), false);
  }

  /** The context after one more token (a word after a word goes on from a mark's branch when
   * the mark makes it likelier). */
  async advance(context, token) {
    let { state } = context;
    if (context.branches.length && !this.isMark[token]) {
      let best = context.logprobs[token];
      for (const branch of context.branches) {
        const score = context.logprobs[branch.mark] + branch.logprobs[token];
        if (score > best) {
          best = score;
          state = branch.state;
        }
      }
    }
    const [, next] = await this.lm.advance(state, token);
    return this._context(next, !this.isMark[token]);
  }

  /** The marks considered after a word: the likeliest (ties by id) above the floor. */
  candidates(logprobs) {
    return [...this.marks].sort((a, b) => logprobs[b] - logprobs[a] || a - b)
      .slice(0, PUNCTUATION_CANDIDATES).filter((p) => logprobs[p] > this.threshold);
  }

  async _context(state, afterWord) {
    const { logprobs } = state;
    const plain = { state, logprobs, branches: [], ranked: logprobs };
    if (!(this.infer && afterWord)) return plain;
    const branches = [];
    for (const mark of this.candidates(logprobs)) {
      const [, after] = await this.lm.advance(state, mark);
      branches.push({ mark, state: after, logprobs: after.logprobs });
    }
    if (!branches.length) return plain;
    const ranked = Float64Array.from(logprobs);
    for (const branch of branches) {
      const base = logprobs[branch.mark];
      for (let i = 0; i < ranked.length; i++) ranked[i] = logAddExp(ranked[i], base + branch.logprobs[i]);
    }
    return { state, logprobs, branches, ranked };
  }
}
