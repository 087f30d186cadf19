// Keyboard suggestions, corrections and a typing session: the Python runtime's
// runtime/keyboard.py and runtime/typing_session.py, with the same words and scores
// (docs/keyboard.md).
//
//   vocabulary -> sorted word entries + ids; a prefix is a range (binary search)
//   suggest(context, prefix, k):  logprobs [V] after the context, top k of the range
//   correct(context, typed, k):   words within 2 edits, ln P_LM + ln P(typed | word) (qwerty.js)
//   contexts: the punctuation a typist leaves out between words inferred (punctuation.js)
//   Typing: the model runs once per finished word; each keystroke filters the kept logprobs,
//           mixed with a unigram cache model of the user's last CACHE_WINDOW words.

import {
  CACHE_WEIGHT, CACHE_WINDOW, MAX_EDITS, UNKNOWN_SPELLING_LOGPROB,
} from './constants.js';
import { InputError } from './errors.js';
import { PunctuationInference, isSpecial } from './punctuation.js';
import { channelLogprob } from './qwerty.js';
import { cleanText } from './tokenizer.js';

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/** A vocabulary entry offered by default: it has a letter and is not a special like <unk>. */
export function isWord(entry) {
  return !isSpecial(entry) && /\p{L}/u.test(entry);
}

/** Python's string order (code points), not JavaScript's UTF-16 order. */
function compare(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d) return d;
  }
  return x.length - y.length;
}

function letterCounts(word) {
  const counts = new Int16Array(LETTERS.length + 1);
  for (const ch of word) {
    const pos = LETTERS.indexOf(ch);
    counts[pos >= 0 ? pos : LETTERS.length] += 1;
  }
  return counts;
}

function byScore(a, b) {
  return (b.logprob + b.channel) - (a.logprob + a.channel) || compare(a.word, b.word);
}

/** The offered entries of a vocabulary, sorted, with their ids: a prefix is a range. */
export class PrefixIndex {
  constructor(vocabulary, { punctuation = false, specials = false } = {}) {
    const chosen = [];
    vocabulary.forEach((w, i) => {
      if (isWord(w) || (punctuation && !w.startsWith('<')) || (specials && w.startsWith('<') && w.endsWith('>'))) {
        chosen.push([w, i]);
      }
    });
    chosen.sort((a, b) => compare(a[0], b[0]) || a[1] - b[1]);
    this.words = chosen.map((c) => c[0]);
    this.ids = Int32Array.from(chosen, (c) => c[1]);
    this.counts = this.words.map(letterCounts);
  }

  _lower(prefix) {
    let lo = 0;
    let hi = this.words.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compare(this.words[mid], prefix) < 0) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  /** [lo, hi): the entries that start with `prefix` (they follow each other from lo on). */
  span(prefix) {
    const lo = this._lower(prefix);
    let hi = lo;
    let end = this.words.length;
    while (hi < end) {
      const mid = (hi + end) >> 1;
      if (this.words[mid].startsWith(prefix)) hi = mid + 1; else end = mid;
    }
    return [lo, hi];
  }

  /** The k likeliest entries starting with `prefix`, best first, ties alphabetical. */
  top(logprobs, prefix, k) {
    const [lo, hi] = this.span(prefix);
    const best = [];  // sorted, at most k
    for (let p = lo; p < hi && k > 0; p++) {
      const lp = logprobs[this.ids[p]];
      if (best.length === k && !(lp > best[k - 1].logprob)) continue;
      let at = best.length;
      while (at > 0 && lp > best[at - 1].logprob) at--;
      best.splice(at, 0, { word: this.words[p], logprob: lp, channel: 0 });
      if (best.length > k) best.pop();
    }
    return best;
  }

  /** [[position, ln P(typed | word)]] of every entry within maxEdits plain edits. */
  near(typed, maxEdits = MAX_EDITS) {
    const t = letterCounts(typed);
    const length = [...typed].length;
    const out = [];
    this.words.forEach((w, pos) => {
      if (Math.abs([...w].length - length) > maxEdits) return;
      const c = this.counts[pos];
      let more = 0;
      let fewer = 0;
      for (let i = 0; i < c.length; i++) {
        const d = c[i] - t[i];
        if (d > 0) more += d; else fewer -= d;
      }
      if (more > maxEdits || fewer > maxEdits) return;
      const channel = channelLogprob(typed, w, maxEdits);
      if (channel > -Infinity) out.push([pos, channel]);
    });
    return out;
  }
}

function checkText(value, name) {
  if (typeof value !== 'string') throw new InputError(`${name} must be a string, got ${typeof value}`);
  return cleanText(value);
}

function checkK(k) {
  if (!Number.isInteger(k) || k < 0) throw new InputError(`k must be a whole number >= 0, got ${k}`);
  return k;
}

/** Suggestions and corrections from a LanguageModel (the Python Keyboard with LMSource). */
export class Keyboard {
  constructor(lm, { punctuation = false, specials = false, inferPunctuation = true } = {}) {
    this.lm = lm;
    this.vocabulary = Array.from({ length: lm.vocabSize }, (_, i) => lm.tokenizer.token(i));
    this.inference = new PunctuationInference(lm, this.vocabulary, inferPunctuation);
    this.index = new PrefixIndex(this.vocabulary, { punctuation, specials });
    this.correctionsIndex = punctuation || specials ? new PrefixIndex(this.vocabulary) : this.index;
  }

  normalize(text) {
    return this.lm.tokenizer.normalize(cleanText(text));
  }

  /** {state, logprobs, branches, ranked} after `text`, left-out marks inferred (punctuation.js). */
  async context(text) {
    let context = await this.inference.begin();
    for (const id of this.lm.tokenize(checkText(text, 'context'))) context = await this.inference.advance(context, id);
    return context;
  }

  async state(context) {
    return (await this.context(context)).state;
  }

  complete(logprobs, prefix, k = 3) {
    return this.index.top(logprobs, this.normalize(checkText(prefix, 'prefix')), checkK(k));
  }

  async suggest(context, prefix = '', k = 3) {
    checkText(prefix, 'prefix');
    checkK(k);
    return this.complete((await this.context(context)).ranked, prefix, k);
  }

  corrections(logprobs, typed, k = 3) {
    checkK(k);
    const word = this.normalize(checkText(typed, 'typed')).trim();
    if (!word || k === 0) return [];
    const index = this.correctionsIndex;
    const found = new Map();
    for (const [pos, channel] of index.near(word)) {
      found.set(index.words[pos], { word: index.words[pos], logprob: logprobs[index.ids[pos]], channel });
    }
    if (!found.has(word)) {
      const ids = this.lm.tokenize(word);
      const known = ids.length === 1 && ids[0] !== this.lm.unkId;
      const lp = known ? logprobs[ids[0]] : logprobs[this.lm.unkId] + UNKNOWN_SPELLING_LOGPROB;
      found.set(word, { word, logprob: lp, channel: 0 });
    }
    return [...found.values()].sort(byScore).slice(0, k);
  }

  async correct(context, typed, k = 3) {
    checkText(typed, 'typed');
    checkK(k);
    return this.corrections((await this.context(context)).ranked, typed, k);
  }
}

/**
 * One user typing (runtime/typing_session.py): keystrokes filter the distribution kept, mixed
 * with a unigram cache model of the last `cacheWindow` finished words (weight `cacheWeight`):
 * P(w) = (1 - λ) P_LM(w) + λ c(w) / C; a word the vocabulary lacks shares P_LM(<unk>) by count.
 * P_LM is the keyboard's context distribution: left-out marks inferred (punctuation.js) unless
 * the keyboard was made with { inferPunctuation: false }; their steps run once per finished word.
 */
export class Typing {
  constructor(keyboard, { learn = true, cacheWeight = CACHE_WEIGHT, cacheWindow = CACHE_WINDOW } = {}) {
    if (typeof cacheWeight !== 'number' || !(cacheWeight >= 0 && cacheWeight < 1)) {
      throw new InputError(`cacheWeight must be a number in [0, 1), got ${cacheWeight}`);
    }
    if (!Number.isInteger(cacheWindow) || cacheWindow < 1) {
      throw new InputError(`cacheWindow must be a whole number >= 1, got ${cacheWindow}`);
    }
    this.keyboard = keyboard;
    this.lm = keyboard.lm;
    this.learn = learn;
    this.cacheWeight = cacheWeight;
    this.cacheWindow = cacheWindow;
    this.window = [];          // the cached entries, oldest first
    this.cache = new Map();    // entry -> count in the window
    this.ids = new Map();      // entry -> vocabulary id (unkId: a word the vocabulary lacks)
    this.index = null;
    this.mixture = null;
    this.units = [];
    this.partial = '';
    this.context = null;       // {state, logprobs, branches, ranked} after the finished words
  }

  /** The model's state after the finished words (left-out marks inferred). */
  get state() {
    return this.context.state;
  }

  /** The next-word distribution after the finished words, before the cache model is mixed in. */
  get logprobs() {
    return this.context.ranked;
  }

  /** A session at the start of a text: `await Typing.create(keyboard)`. */
  static async create(keyboard, options) {
    const typing = new Typing(keyboard, options);
    await typing.reset();
    return typing;
  }

  /** The words in the cache window that the vocabulary lacks, with their counts. */
  get userWords() {
    return new Map([...this.cache].filter(([w]) => this.ids.get(w) === this.lm.unkId));
  }

  get text() {
    return [...this.units.map((u) => u.text), ...(this.partial ? [this.partial] : [])].join(' ');
  }

  async reset() {
    this.units = [];
    this.partial = '';
    this.context = await this.keyboard.inference.begin();
    this.mixture = null;
  }

  async type(char) {
    if (typeof char !== 'string' || [...char].length !== 1) throw new InputError(`type takes one character, got ${char}`);
    if (/^\s$/u.test(char)) {
      await this.space();
    } else if (/[\p{L}\p{N}'-]/u.test(char) || this.lm.tokenize(char).length === 0) {
      this.partial += char;
    } else {
      await this.space();
      await this._commit(char);
    }
  }

  backspace() {
    if (this.partial) {
      this.partial = [...this.partial].slice(0, -1).join('');
    } else if (this.units.length) {
      const unit = this.units.pop();
      this.context = unit.context;
      this.partial = [...unit.text].slice(0, -1).join('');
      if (unit.cached !== null) {
        this.window.pop();
        this._count(unit.cached, -1);
      }
      if (unit.evicted !== null) {
        const [entry, id] = unit.evicted;
        this.window.unshift(entry);
        if (!this.ids.has(entry)) this.ids.set(entry, id);
        this._count(entry, 1);
      }
      this.mixture = null;
    }
  }

  async space() {
    if (this.partial.trim()) await this._commit(this.partial.trim());
    this.partial = '';
  }

  async accept(word) {
    if (typeof word !== 'string' || !word.trim()) throw new InputError(`accept takes a word, got ${word}`);
    this.partial = '';
    await this._commit(word.trim());
  }

  async _commit(word) {
    const ids = this.lm.tokenize(word);
    const normal = this.keyboard.normalize(word);
    let cached = null;
    let evicted = null;
    if (this.learn && isWord(normal) && !normal.includes(' ')) {
      const known = ids.length === 1 && ids[0] !== this.lm.unkId;
      cached = known ? this.keyboard.vocabulary[ids[0]] : normal;
      if (!this.ids.has(cached)) this.ids.set(cached, known ? ids[0] : this.lm.unkId);
      this.window.push(cached);
      this._count(cached, 1);
      if (this.window.length > this.cacheWindow) {
        const entry = this.window.shift();
        evicted = [entry, this.ids.get(entry)];
        this._count(entry, -1);
      }
    }
    this.units.push({ text: word, context: this.context, cached, evicted });
    for (const id of ids) this.context = await this.keyboard.inference.advance(this.context, id);
    this.mixture = null;
  }

  _count(entry, step) {
    const count = (this.cache.get(entry) || 0) + step;
    if (count <= 0) {
      this.cache.delete(entry);
      this.ids.delete(entry);
    } else {
      this.cache.set(entry, count);
    }
    if (count <= 0 || count === step) this.index = null;
  }

  /** The cache's words under the mixture for the current distribution: {index, logprobs, score}. */
  _mixed() {
    if (this.mixture === null) {
      const entries = [...this.cache.keys()];
      if (this.index === null) this.index = new PrefixIndex(entries);
      const logprobs = this.context.ranked;
      const lam = this.cacheWeight;
      let unknownTotal = 0;
      for (const [w, c] of this.cache) if (this.ids.get(w) === this.lm.unkId) unknownTotal += c;
      const mixed = new Float64Array(entries.length).fill(-Infinity);
      const score = new Map();
      this.index.words.forEach((w, p) => {
        const c = this.cache.get(w);
        const id = this.ids.get(w);
        let lm = Math.exp(logprobs[id]);
        if (id === this.lm.unkId) lm *= c / unknownTotal;
        const lp = Math.log((1 - lam) * lm + lam * c / this.window.length);
        mixed[this.index.ids[p]] = lp;
        score.set(w, lp);
      });
      this.mixture = { index: this.index, logprobs: mixed, score };
    }
    return this.mixture;
  }

  suggestions(k = 3) {
    const found = this.keyboard.complete(this.context.ranked, this.partial, k);
    if (!this.cache.size) return found;
    const mix = this._mixed();
    const scale = Math.log1p(-this.cacheWeight);
    const best = new Map(found.map((s) => [s.word, { ...s, logprob: mix.score.get(s.word) ?? s.logprob + scale }]));
    for (const s of mix.index.top(mix.logprobs, this.keyboard.normalize(this.partial), k)) best.set(s.word, s);
    return [...best.values()].sort(byScore).slice(0, k);
  }

  corrections(k = 3) {
    const found = this.keyboard.corrections(this.context.ranked, this.partial, k);
    if (!this.cache.size || !found.length) return found;
    const mix = this._mixed();
    const scale = Math.log1p(-this.cacheWeight);
    const best = new Map(found.map((s) => [s.word, { ...s, logprob: mix.score.get(s.word) ?? s.logprob + scale }]));
    const typed = this.keyboard.normalize(this.partial).trim();
    for (const [pos, channel] of mix.index.near(typed)) {
      const word = mix.index.words[pos];
      best.set(word, { word, logprob: mix.score.get(word), channel });
    }
    return [...best.values()].sort(byScore).slice(0, k);
  }
}
