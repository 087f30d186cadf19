// Word features beside the vocabulary id, exactly as the Python runtime's features.py computes
// them: the shape of each word piece (its capitalisation and characters) and a hashed suffix.
//
//   piece     "Teddy"        "ROOSEVELT"   ","     "1901"
//   shapeId   capitalised    upper         punct   digits
//   suffixId  h("ddy")       h("elt")      h(",")  h("901")     h = FNV-1a 32 over UTF-8, mod 4095, + 1
//
// The character classes are Python's (feature-tables.js, generated from Python), so the numbers
// do not depend on the JavaScript engine's Unicode version. Index 0 of both is padding.

import { ALNUM, ALPHA, CASED, CASE_IGNORABLE, DIGIT, LOWER, PY_LOWER, TITLE, UPPER } from './feature-tables.js';

/** Shape classes; index 0 is padding and never the shape of a real word. */
export const SHAPES = ['pad', 'lower', 'capitalised', 'upper', 'mixed', 'digits', 'punct', 'other'];
/** Hash buckets of the suffix feature (bucket 0 is padding). */
export const SUFFIX_BUCKETS = 4096;
/** Characters (code points) of the word's end that the suffix feature hashes. */
export const SUFFIX_CHARS = 3;

function codeSet(table) {
  const set = new Set();
  for (const range of table.split(',')) {
    const [a, b] = range.split('-').map((h) => parseInt(h, 16));
    for (let cp = a; cp <= (b ?? a); cp++) set.add(cp);
  }
  return set;
}

const SETS = {};
function set(name, table) {
  SETS[name] ??= codeSet(table);
  return SETS[name];
}
const is = {
  alpha: (cp) => set('alpha', ALPHA).has(cp),
  digit: (cp) => set('digit', DIGIT).has(cp),
  alnum: (cp) => set('alnum', ALNUM).has(cp),
  lower: (cp) => set('lower', LOWER).has(cp),
  upper: (cp) => set('upper', UPPER).has(cp),
  title: (cp) => set('title', TITLE).has(cp),
  cased: (cp) => set('cased', CASED).has(cp),
  ignorable: (cp) => set('ignorable', CASE_IGNORABLE).has(cp),
};
let lowerMap = null;

function codePoints(word) {
  return Array.from(word, (c) => c.codePointAt(0));
}

// Python's str.islower / str.isupper of a whole string
function allLower(cps) {
  let cased = false;
  for (const cp of cps) {
    if (is.upper(cp) || is.title(cp)) return false;
    if (is.lower(cp)) cased = true;
  }
  return cased;
}
function allUpper(cps) {
  let cased = false;
  for (const cp of cps) {
    if (is.lower(cp) || is.title(cp)) return false;
    if (is.upper(cp)) cased = true;
  }
  return cased;
}

/** The index in SHAPES of `word`'s shape (as features.shape_id in Python). */
export function shapeId(word) {
  const cps = codePoints(word);
  if (cps.length && cps.every(is.alpha)) {
    if (allLower(cps)) return 1;
    if (allUpper(cps)) return cps.length > 1 ? 3 : 2;
    if (allUpper([cps[0]]) && (cps.length === 1 || allLower(cps.slice(1)))) return 2;
    return 4;
  }
  if (cps.length && cps.every(is.digit)) return 5;
  if (!cps.some(is.alnum)) return 6;
  return 7;
}

/** Python's str.lower: its case table, and Σ as ς at the end of a word (the final-sigma rule). */
export function pythonLower(word) {
  if (lowerMap === null) {
    lowerMap = new Map(PY_LOWER.split(',').map((pair) => {
      const [from, to] = pair.split(':');
      return [parseInt(from, 16), String.fromCodePoint(...to.split('.').map((h) => parseInt(h, 16)))];
    }));
  }
  const cps = codePoints(word);
  return cps.map((cp, i) => {
    if (cp !== 0x3a3) return lowerMap.get(cp) ?? String.fromCodePoint(cp);
    let j = i - 1;
    while (j >= 0 && is.ignorable(cps[j])) j--;
    const before = j >= 0 && is.cased(cps[j]);
    let k = i + 1;
    while (k < cps.length && is.ignorable(cps[k])) k++;
    const after = k < cps.length && is.cased(cps[k]);
    return before && !after ? '\u03c2' : '\u03c3';
  }).join('');
}

const UTF8 = new TextEncoder();

/** The hash bucket, in [1, SUFFIX_BUCKETS), of `word`'s last three (lower-cased) characters. */
export function suffixId(word) {
  const tail = Array.from(pythonLower(word)).slice(-SUFFIX_CHARS).join('');
  let h = 0x811c9dc5;
  for (const byte of UTF8.encode(tail)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return (h % (SUFFIX_BUCKETS - 1)) + 1;
}

/** Shape and suffix ids of each word piece: [shapes, suffixes]. */
export function features(words) {
  return [words.map(shapeId), words.map(suffixId)];
}
