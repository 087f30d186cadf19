// The tokenizer of a pocketlm model folder, read from its tokenizer.json exactly as the
// `tokenizers` library applies it:
//
//   text -> lone surrogates to U+FFFD (as the Python runtime does)
//        -> split out the added tokens (<unk>, <eos>) typed literally, matched on the raw text
//        -> each other piece: normalizer -> pre_tokenizer -> model (word -> id, <unk> if absent)
//
// Component types are read generically; a type pocketlm's ingest never writes is refused with
// an error naming it, rather than tokenised differently from Python.

import { ArtifactError } from './errors.js';
import { classBody, compileOniguruma, escapeLiteral } from './regex.js';
import { LOWERCASE, NORMALIZE_AS_IS, WHITESPACE_SPACE, WHITESPACE_WORD } from './unicode-tables.js';

const SURROGATE = /\p{Surrogate}/gu;
const WORD = classBody(WHITESPACE_WORD);
const SPACE = classBody(WHITESPACE_SPACE);
const WHITESPACE_RULE = new RegExp(`[${WORD}]+|[^${WORD}${SPACE}]+`, 'gu');
const WHITESPACE_SPLIT = new RegExp(`[${SPACE}]+`, 'gu');
const LOWER = new Map(LOWERCASE.split(',').map((pair) => {
  const [from, to] = pair.split(':');
  return [String.fromCodePoint(parseInt(from, 16)), String.fromCodePoint(...to.split('.').map((h) => parseInt(h, 16)))];
}));
const UPPER = new RegExp(`[${[...LOWER.keys()].map((c) => `\\u{${c.codePointAt(0).toString(16)}}`).join('')}]`, 'gu');
const AS_IS = new RegExp(`[${classBody(NORMALIZE_AS_IS)}]`, 'u');
const AS_IS_SPLIT = new RegExp(`([${classBody(NORMALIZE_AS_IS)}])`, 'u');

/** Unicode normalisation as the tokenizers library does it: code points its (older) Unicode
 * tables do not know pass through untouched and block composition, as unassigned ones do. */
function normalizeForm(text, form) {
  if (!AS_IS.test(text)) return text.normalize(form);
  return text.split(AS_IS_SPLIT).map((piece, i) => (i % 2 ? piece : piece.normalize(form))).join('');
}

function unsupported(section, type) {
  return new ArtifactError(
    `tokenizer.json: ${section} type ${JSON.stringify(type)} is not supported by the pocketlm ` +
    'JavaScript tokenizer (it reads what `pocketlm ingest` writes); re-create the vocabulary ' +
    'with `pocketlm ingest`');
}

/** A lone surrogate becomes U+FFFD, as in the Python runtime's clean_text. */
export function cleanText(text) {
  if (typeof text !== 'string') throw new TypeError(`expected a string, got ${typeof text}`);
  return text.replace(SURROGATE, '\ufffd');
}

function pattern(spec, section) {
  if (spec && typeof spec.Regex === 'string') return compileOniguruma(spec.Regex);
  if (spec && typeof spec.String === 'string') return new RegExp(escapeLiteral(spec.String), 'gu');
  throw unsupported(section, JSON.stringify(spec));
}

/** A normalizer spec -> function(string) -> string. */
export function buildNormalizer(spec) {
  if (spec == null) return (s) => s;
  switch (spec.type) {
    case 'Sequence': {
      const steps = spec.normalizers.map(buildNormalizer);
      return (s) => steps.reduce((text, step) => step(text), s);
    }
    case 'NFC': case 'NFD': case 'NFKC': case 'NFKD':
      return (s) => normalizeForm(s, spec.type);
    case 'Lowercase':
      // code point by code point, as tokenizers does (so a final capital sigma becomes σ, not
      // the ς of String.prototype.toLowerCase), with the library's own case table
      return (s) => s.replace(UPPER, (c) => LOWER.get(c));
    case 'Replace': {
      const re = pattern(spec.pattern, 'normalizer Replace pattern');
      const content = String(spec.content);
      return (s) => s.replace(re, () => content);
    }
    default:
      throw unsupported('normalizer', spec.type);
  }
}

// -- normalising with alignments --------------------------------------------------------------
// The word pieces' offsets in the original text (what a tagger reports, and what the word
// features are computed from) follow each character through the normalizer, as the tokenizers
// library's NormalizedString does: a unit is one code point of the normalised text with the
// original range [a, b) it came from.

const MARK = /^\p{M}$/u;

function unitsOf(text, offset) {
  const units = [];
  let at = offset;
  for (const c of text) {
    units.push({ s: c, a: at, b: at + c.length });
    at += c.length;
  }
  return units;
}

function spread(text, a, b) {
  return Array.from(text, (c) => ({ s: c, a, b }));
}

/** A normalizer spec -> function(units) -> units, tracking where each code point came from. */
export function buildAlignedNormalizer(spec) {
  if (spec == null) return (units) => units;
  switch (spec.type) {
    case 'Sequence': {
      const steps = spec.normalizers.map(buildAlignedNormalizer);
      return (units) => steps.reduce((u, step) => step(u), units);
    }
    case 'NFC': case 'NFD': case 'NFKC': case 'NFKD':
      // a base character with the marks that follow it normalises as one segment; every code
      // point it becomes comes from the whole segment
      return (units) => {
        const out = [];
        for (let i = 0; i < units.length;) {
          let j = i + 1;
          while (j < units.length && MARK.test(units[j].s)) j++;
          const text = units.slice(i, j).map((u) => u.s).join('');
          out.push(...spread(normalizeForm(text, spec.type), units[i].a, units[j - 1].b));
          i = j;
        }
        return out;
      };
    case 'Lowercase':
      return (units) => units.flatMap((u) => (LOWER.has(u.s) ? spread(LOWER.get(u.s), u.a, u.b) : [u]));
    case 'Replace': {
      const re = pattern(spec.pattern, 'normalizer Replace pattern');
      const content = String(spec.content);
      // the replacement's code points come from the last character replaced
      return (units) => {
        const text = units.map((u) => u.s).join('');
        const unitAt = [];
        units.forEach((u, k) => { for (let n = 0; n < u.s.length; n++) unitAt.push(k); });
        const out = [];
        let next = 0;
        for (const [start, end] of matches(re, text)) {
          const first = unitAt[start];
          const last = unitAt[end - 1];
          out.push(...units.slice(next, first), ...spread(content, units[last].a, units[last].b));
          next = last + 1;
        }
        out.push(...units.slice(next));
        return out;
      };
    }
    default:
      throw unsupported('normalizer', spec.type);
  }
}

function matches(re, text) {
  const found = [];
  for (const m of text.matchAll(re)) {
    if (m[0].length) found.push([m.index, m.index + m[0].length]);
  }
  return found;
}

/** Pieces of `text` cut by `re`: [start, end, isMatch] spans covering it, in order. */
function spans(re, text) {
  const out = [];
  let previous = 0;
  for (const [start, end] of matches(re, text)) {
    if (start > previous) out.push([previous, start, false]);
    out.push([start, end, true]);
    previous = end;
  }
  if (previous < text.length) out.push([previous, text.length, false]);
  return out;
}

function splitBy(re, behavior, invert) {
  return (text) => {
    const parts = spans(re, text).map(([a, b, m]) => [a, b, invert ? !m : m]);
    const out = [];
    if (behavior === 'Removed') {
      for (const [a, b, delimiter] of parts) if (!delimiter) out.push([a, b]);
    } else if (behavior === 'Isolated') {
      for (const [a, b] of parts) out.push([a, b]);
    } else if (behavior === 'MergedWithPrevious' || behavior === 'MergedWithNext') {
      // a delimiter joins its neighbour unless that neighbour is a delimiter too
      const next = behavior === 'MergedWithNext';
      const ordered = next ? [...parts].reverse() : parts;
      let previousDelimiter = false;
      for (const [a, b, delimiter] of ordered) {
        if (delimiter && !previousDelimiter && out.length) {
          const last = out[out.length - 1];
          out[out.length - 1] = next ? [a, last[1]] : [last[0], b];
        } else {
          out.push([a, b]);
        }
        previousDelimiter = delimiter;
      }
      if (next) out.reverse();
    } else {
      throw unsupported('pre_tokenizer Split behavior', behavior);
    }
    return out.filter(([a, b]) => b > a);
  };
}

/** A pre_tokenizer spec -> function(string) -> [start, end] spans of its words. */
export function buildPreTokenizerSpans(spec) {
  if (spec == null) return (s) => (s.length ? [[0, s.length]] : []);
  switch (spec.type) {
    case 'Sequence': {
      const steps = spec.pretokenizers.map(buildPreTokenizerSpans);
      return (s) => steps.reduce((pieces, step) => pieces.flatMap(
        ([a, b]) => step(s.slice(a, b)).map(([x, y]) => [a + x, a + y])), [[0, s.length]])
        .filter(([a, b]) => b > a);
    }
    case 'Whitespace':
      return (s) => matches(WHITESPACE_RULE, s);
    case 'WhitespaceSplit':
      return splitBy(WHITESPACE_SPLIT, 'Removed', false);
    case 'Split':
      return splitBy(pattern(spec.pattern, 'pre_tokenizer Split pattern'), spec.behavior,
        Boolean(spec.invert));
    default:
      throw unsupported('pre_tokenizer', spec.type);
  }
}

/** A pre_tokenizer spec -> function(string) -> words. */
export function buildPreTokenizer(spec) {
  const cut = buildPreTokenizerSpans(spec);
  return (s) => cut(s).map(([a, b]) => s.slice(a, b));
}

/** A tokenizer.json (parsed) as a function from text to token ids, with its vocabulary. */
export class Tokenizer {
  constructor(json) {
    if (!json || typeof json !== 'object' || !json.model) {
      throw new ArtifactError('tokenizer.json: not a tokenizers file (no "model" section); ' +
        're-create the vocabulary with `pocketlm ingest`');
    }
    if (json.model.type !== 'WordLevel') throw unsupported('model', json.model.type);
    this.vocab = new Map(Object.entries(json.model.vocab));
    this.idToToken = [];
    for (const [token, id] of this.vocab) this.idToToken[id] = token;
    if (!this.vocab.has(json.model.unk_token)) {
      throw new ArtifactError(`tokenizer.json: unk_token ${JSON.stringify(json.model.unk_token)} ` +
        'is not in the vocabulary; re-create the vocabulary with `pocketlm ingest`');
    }
    this.unkId = this.vocab.get(json.model.unk_token);
    this.added = [];
    for (const token of json.added_tokens || []) {
      if (token.normalized || token.single_word || token.lstrip || token.rstrip) {
        throw unsupported('added token', `${token.content} with normalized/single_word/strip options`);
      }
      this.added.push({ content: token.content, id: token.id });
      this.idToToken[token.id] = token.content;
    }
    this.added.sort((a, b) => b.content.length - a.content.length);  // longest first at a tie
    this.normalize = buildNormalizer(json.normalizer);
    this.normalizeAligned = buildAlignedNormalizer(json.normalizer);
    this.preTokenize = buildPreTokenizer(json.pre_tokenizer);
    this.preTokenizeSpans = buildPreTokenizerSpans(json.pre_tokenizer);
    for (const [section, value] of [['post_processor', json.post_processor], ['truncation', json.truncation],
      ['padding', json.padding]]) {
      if (value != null) throw unsupported(section, value.type || 'set');
    }
  }

  get size() {
    return this.idToToken.length;
  }

  /** The text split at literal added tokens: [{text}|{id, text}], leftmost, longest first. */
  splitAdded(text) {
    const out = [];
    let position = 0;
    while (position < text.length) {
      let best = null;
      for (const token of this.added) {
        if (!token.content) continue;
        const at = text.indexOf(token.content, position);
        if (at >= 0 && (best === null || at < best.at)) best = { at, token };
      }
      if (best === null) break;
      if (best.at > position) out.push({ text: text.slice(position, best.at) });
      out.push({ text: best.token.content, id: best.token.id });
      position = best.at + best.token.content.length;
    }
    if (position < text.length) out.push({ text: text.slice(position) });
    return out;
  }

  /** The words of `text` with their ids: [{word, id}], word as normalised. */
  encodeWords(text) {
    const out = [];
    for (const piece of this.splitAdded(cleanText(text))) {
      if (piece.id !== undefined) {
        out.push({ word: piece.text, id: piece.id });
        continue;
      }
      for (const word of this.preTokenize(this.normalize(piece.text))) {
        const id = this.vocab.get(word);
        out.push({ word, id: id === undefined ? this.unkId : id });
      }
    }
    return out;
  }

  /**
   * The word pieces of `text` as written: [{word, id, start, end}], `word` the original text
   * text.slice(start, end) (string indices; lone surrogates read as U+FFFD), `id` its
   * vocabulary id. The Python runtime's features.pieces_of.
   */
  encodePieces(text) {
    const clean = cleanText(text);
    const out = [];
    let at = 0;
    for (const piece of this.splitAdded(clean)) {
      const start = at;
      at += piece.text.length;
      if (piece.id !== undefined) {
        out.push({ word: piece.text, id: piece.id, start, end: at });
        continue;
      }
      const units = this.normalizeAligned(unitsOf(piece.text, start));
      const normal = units.map((u) => u.s).join('');
      const unitAt = [];
      units.forEach((u, k) => { for (let n = 0; n < u.s.length; n++) unitAt.push(k); });
      for (const [a, b] of this.preTokenizeSpans(normal)) {
        const id = this.vocab.get(normal.slice(a, b));
        const from = units[unitAt[a]].a;
        const to = units[unitAt[b - 1]].b;
        out.push({ word: clean.slice(from, to), id: id === undefined ? this.unkId : id, start: from, end: to });
      }
    }
    return out;
  }

  /** Token ids of `text` (no <eos> markers). */
  encode(text) {
    return this.encodeWords(text).map((w) => w.id);
  }

  /** The vocabulary token of an id. */
  token(id) {
    return this.idToToken[id];
  }
}
