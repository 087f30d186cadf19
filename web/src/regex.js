// Oniguruma patterns (what the `tokenizers` library compiles a tokenizer.json "Regex" with)
// translated to JavaScript RegExp source, for the subset pocketlm's tokenizers use.
//
// Oniguruma's \w, \d and \s are Unicode classes (JavaScript's are ASCII even with the u flag);
// they are taken from tables probed from the tokenizers library (unicode-tables.js), and \b is
// a boundary of that \w; `.` stops at \n only, and ^ $ are line anchors (Ruby syntax). Anything outside the subset
// (inline options, possessive quantifiers, nested classes, POSIX brackets, unknown escapes)
// is refused with an error rather than translated wrongly.

import { ArtifactError } from './errors.js';
import { REGEX_DIGIT, REGEX_SPACE, REGEX_WORD } from './unicode-tables.js';

/** The body of a RegExp character class (u flag) for a table of 'a-b,c' hex ranges. */
export function classBody(table) {
  return table.split(',').map((range) => range.split('-').map((cp) => `\\u{${cp}}`).join('-')).join('');
}

export const WORD = classBody(REGEX_WORD);
export const DIGIT = classBody(REGEX_DIGIT);
export const SPACE = classBody(REGEX_SPACE);

const CLASS_ESCAPES = { w: WORD, d: DIGIT, s: SPACE };
const BOUNDARY = `(?:(?<=[${WORD}])(?![${WORD}])|(?<![${WORD}])(?=[${WORD}]))`;
const NOT_BOUNDARY = `(?:(?<=[${WORD}])(?=[${WORD}])|(?<![${WORD}])(?![${WORD}]))`;
const SIMPLE_ESCAPES = new Set(['t', 'n', 'r', 'f', 'v']);

function unsupported(pattern, what) {
  return new ArtifactError(
    `tokenizer.json: the regular expression ${JSON.stringify(pattern)} uses ${what}, which the ` +
    'pocketlm JavaScript tokenizer does not support; re-create the vocabulary with `pocketlm ingest`');
}

/** The JavaScript RegExp (flags "gu") equivalent to an Oniguruma pattern from tokenizer.json. */
export function translateOniguruma(pattern) {
  let out = '';
  let inClass = false;
  let lastWasQuantifier = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    let quantifier = false;
    if (c === '\\') {
      const e = pattern[i + 1];
      if (e === undefined) throw unsupported(pattern, 'a trailing backslash');
      i++;
      const lower = e.toLowerCase();
      if (lower in CLASS_ESCAPES) {
        const body = CLASS_ESCAPES[lower];
        if (e === lower) out += inClass ? body : `[${body}]`;
        else if (inClass) throw unsupported(pattern, `\\${e} inside a character class`);
        else out += `[^${body}]`;
      } else if (e === 'b' && !inClass) {
        out += BOUNDARY;
      } else if (e === 'B' && !inClass) {
        out += NOT_BOUNDARY;
      } else if (SIMPLE_ESCAPES.has(e)) {
        out += `\\${e}`;
      } else if (/[A-Za-z0-9]/.test(e)) {
        throw unsupported(pattern, `the escape \\${e}`);
      } else if ('^$\\.*+?()[]{}|/'.includes(e) || (inClass && e === '-')) {
        out += `\\${e}`;
      } else {
        out += e;   // an escaped character JavaScript's u flag takes only unescaped
      }
    } else if (inClass) {
      if (c === '[') throw unsupported(pattern, 'a nested character class or POSIX bracket');
      if (c === '&' && pattern[i + 1] === '&') throw unsupported(pattern, 'class intersection (&&)');
      if (c === ']') inClass = false;
      out += c;
    } else if (c === '[') {
      inClass = true;
      out += c;
      if (pattern[i + 1] === '^') { out += '^'; i++; }
      if (pattern[i + 1] === ']') { out += '\\]'; i++; }   // a leading ] is a literal
    } else if (c === '(' && pattern[i + 1] === '?') {
      const rest = pattern.slice(i + 2);
      if (!/^(?::|=|!|<=|<!|<[A-Za-z])/.test(rest)) throw unsupported(pattern, 'an inline option or special group');
      out += c;
    } else if (c === '.') {
      out += '[^\\n]';
    } else if (c === '^') {
      out += '(?<![^\\n])';
    } else if (c === '$') {
      out += '(?![^\\n])';
    } else if ('*+?'.includes(c) || c === '{') {
      if (c === '+' && lastWasQuantifier) throw unsupported(pattern, 'a possessive quantifier');
      if (c === '{') {
        const m = /^\{\d*(?:,\d*)?\}/.exec(pattern.slice(i));
        if (!m) throw unsupported(pattern, 'a literal {');
        out += m[0];
        i += m[0].length - 1;
      } else {
        out += c;
      }
      quantifier = c !== '?' || !lastWasQuantifier;
    } else {
      out += c;
    }
    lastWasQuantifier = quantifier;
  }
  if (inClass) throw unsupported(pattern, 'an unclosed character class');
  return out;
}

/** A global Unicode RegExp for an Oniguruma pattern. */
export function compileOniguruma(pattern) {
  const source = translateOniguruma(pattern);
  try {
    return new RegExp(source, 'gu');
  } catch (error) {
    throw unsupported(pattern, `syntax JavaScript cannot compile (${error.message})`);
  }
}

/** Escape a literal string for use inside a RegExp. */
export function escapeLiteral(text) {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}
