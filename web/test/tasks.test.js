// Unit tests of the classify/tag helpers: word features, BIO2 spans and Viterbi on hand-made
// numbers (the parity with the Python runtime on real folders is tests/test_web_tasks.py's job).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SHAPES, shapeId, suffixId, pythonLower } from '../src/features.js';
import { allowedTransitions, bioSpans, viterbi } from '../src/tasks.js';

test('shapes of typical words', () => {
  const names = ['lord', 'Lord', 'LORD', 'McDonald', '1611', ',', 'v12', 'I', 'É'].map((w) => SHAPES[shapeId(w)]);
  assert.deepEqual(names, ['lower', 'capitalised', 'upper', 'mixed', 'digits', 'punct', 'other', 'capitalised', 'capitalised']);
});

test('suffix buckets: FNV-1a over the last three lower-cased characters', () => {
  assert.equal(suffixId('Lord'), 3608);                          // the value features.py fixes
  assert.equal(suffixId('A'), (0xe40c292c % 4095) + 1);           // FNV-1a 32 of "a"
  assert.equal(suffixId('WORD'), suffixId('word'));
  assert.equal(pythonLower('ΟΣ'), 'ος');                          // the final sigma
  assert.equal(pythonLower('Σ'), 'σ');
});

test('BIO2 spans by the CoNLL rules', () => {
  assert.deepEqual(bioSpans(['B-PER', 'I-PER', 'O', 'I-PER', 'B-LOC', 'I-PER']),
    [[0, 2, 'PER'], [3, 4, 'PER'], [4, 5, 'LOC'], [5, 6, 'PER']]);
  assert.deepEqual(bioSpans([]), []);
});

test('Viterbi keeps tags valid and breaks ties towards the lower index', () => {
  const labels = ['O', 'B-NAME', 'I-NAME'];
  const tr = allowedTransitions(labels);
  assert.deepEqual(tr.start, [true, true, false]);
  // piece by piece O then I-NAME (invalid): B-NAME I-NAME (0.3 * 0.65) beats O O (0.6 * 0.25)
  const lp = [0.6, 0.3, 0.1, 0.25, 0.1, 0.65].map(Math.log);
  assert.deepEqual(viterbi(lp, 2, 3, tr).map((k) => labels[k]), ['B-NAME', 'I-NAME']);
  assert.deepEqual(viterbi(new Array(9).fill(0), 3, 3, tr), [0, 0, 0]);
  assert.deepEqual(viterbi([], 0, 3, tr), []);
});
