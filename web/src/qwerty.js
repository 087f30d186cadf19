// QWERTY geometry and the typing-error model of keyboard correction (a noisy channel): the Python
// runtime's runtime/qwerty.py, with the same costs (EDIT_LOGPROB, generated from Python).
//
//   neighbours: keys whose centres are at most 1.5 key widths apart on the staggered rows
//   channelLogprob(typed, word): ln P(typed | the user meant word), the cheapest alignment

import { EDIT_LOGPROB, MAX_EDITS } from './constants.js';

const ROWS = ['qwertyuiop', 'asdfghjkl', 'zxcvbnm'];
const ROW_OFFSET = [0, 0.25, 0.75];

const POSITIONS = new Map();
ROWS.forEach((keys, row) => [...keys].forEach((ch, col) => POSITIONS.set(ch, [col + ROW_OFFSET[row], row])));
const NEIGHBOURS = new Map();
for (const [a, [ax, ay]] of POSITIONS) {
  NEIGHBOURS.set(a, new Set([...POSITIONS].filter(([b, [bx, by]]) => b !== a && Math.hypot(ax - bx, ay - by) <= 1.5)
    .map(([b]) => b)));
}

export function adjacent(a, b) {
  return NEIGHBOURS.has(a) && NEIGHBOURS.get(a).has(b);
}

function substitution(meant, typed) {
  if (meant === typed) return 0;
  return EDIT_LOGPROB[adjacent(meant, typed) ? 'neighbour' : 'substitution'];
}

function insertion(typed, before, after) {
  if (typed === before || typed === after || adjacent(typed, before) || adjacent(typed, after)) {
    return EDIT_LOGPROB.extra_neighbour;
  }
  return EDIT_LOGPROB.extra;
}

/** ln P(typed | the user meant word): a weighted optimal-string-alignment distance. */
export function channelLogprob(typedText, wordText, maxEdits = MAX_EDITS) {
  const typed = [...typedText];
  const word = [...wordText];
  const n = typed.length;
  const m = word.length;
  if (Math.abs(n - m) > maxEdits) return -Infinity;
  if (typedText === wordText) return 0;
  const cost = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(-Infinity));
  const edits = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  cost[0][0] = 0;
  for (let i = 0; i <= n; i++) {
    let rowBest = -Infinity;
    for (let j = 0; j <= m; j++) {
      if (i === 0 && j === 0) continue;
      const options = [];
      if (i && j) {
        options.push([cost[i - 1][j - 1] + substitution(word[j - 1], typed[i - 1]),
          edits[i - 1][j - 1] + (typed[i - 1] !== word[j - 1] ? 1 : 0)]);
      }
      if (i) {
        options.push([cost[i - 1][j] + insertion(typed[i - 1], j ? word[j - 1] : '', j < m ? word[j] : ''),
          edits[i - 1][j] + 1]);
      }
      if (j) options.push([cost[i][j - 1] + EDIT_LOGPROB.missing, edits[i][j - 1] + 1]);
      if (i > 1 && j > 1 && typed[i - 1] === word[j - 2] && typed[i - 2] === word[j - 1]
          && typed[i - 1] !== typed[i - 2]) {
        options.push([cost[i - 2][j - 2] + EDIT_LOGPROB.transposition, edits[i - 2][j - 2] + 1]);
      }
      let best = -Infinity;
      let used = 0;
      for (const [c, e] of options) {
        if (e <= maxEdits && c > best) { best = c; used = e; }
      }
      cost[i][j] = best;
      edits[i][j] = used;
      if (best > rowBest) rowBest = best;
    }
    if (rowBest === -Infinity && i) return -Infinity;
  }
  return cost[n][m];
}
