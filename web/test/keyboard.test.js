// Unit tests of the keyboard's parts that need no model: the QWERTY channel, the prefix index and
// the inferred punctuation over a stand-in model (suggestions on a real model are compared with
// Python in tests/test_web_keyboard.py).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EDIT_LOGPROB, PUNCTUATION_CANDIDATES, PUNCTUATION_MIN_PROB } from '../src/constants.js';
import { PrefixIndex, isWord } from '../src/keyboard.js';
import { PunctuationInference, isPunctuation } from '../src/punctuation.js';
import { adjacent, channelLogprob } from '../src/qwerty.js';

test('QWERTY neighbours and one-edit costs', () => {
  assert.ok(adjacent('g', 'h') && adjacent('e', 'r') && !adjacent('q', 'p'));
  assert.equal(channelLogprob('the', 'the'), 0);
  assert.equal(channelLogprob('thr', 'the'), EDIT_LOGPROB.neighbour);
  assert.equal(channelLogprob('teh', 'the'), EDIT_LOGPROB.transposition);
  assert.equal(channelLogprob('te', 'the'), EDIT_LOGPROB.missing);
  assert.equal(channelLogprob('thqe', 'the'), EDIT_LOGPROB.extra);
  assert.equal(channelLogprob('xyz', 'lord'), -Infinity);
});

test('a prefix is a range; top k is exact with alphabetical ties', () => {
  const vocab = ['<unk>', '<eos>', 'lord', 'lot', ',', 'love', 'said', 'lo'];
  const index = new PrefixIndex(vocab);
  assert.deepEqual(index.words, ['lo', 'lord', 'lot', 'love', 'said']);
  const logprobs = Float32Array.from([-9, -9, -1, -3, -0.5, -3, -2, -5]);
  assert.deepEqual(index.top(logprobs, 'lo', 3).map((s) => s.word), ['lord', 'lot', 'love']);
  assert.deepEqual(index.top(logprobs, 'zz', 3), []);
  assert.deepEqual(index.top(logprobs, '', 0), []);
  assert.ok(!isWord('<eos>') && !isWord(',') && isWord("lord's"));
});

test('punctuation entries: no letter or digit, not a special', () => {
  for (const w of [',', '.', ';', '--', "'", '!?', '(', '<', '<>']) assert.ok(isPunctuation(w), w);
  for (const w of ['<unk>', '<eos>', 'a', '3', "lord's", '', 'é']) assert.ok(!isPunctuation(w), w);
  assert.equal(PUNCTUATION_CANDIDATES, 2);
  assert.equal(PUNCTUATION_MIN_PROB, 0.05);
});

// A bigram table as a model (the state keeps its path); "," and "." are likely after "said".
const VOCAB = ['<unk>', '<eos>', ',', '.', 'said', 'let', 'there', ';'];
const P = {
  1: [0, 0, 0.01, 0.01, 0.5, 0.3, 0.17, 0.01],
  4: [0, 0.02, 0.5, 0.2, 0.01, 0.07, 0.1, 0.1],
  2: [0, 0, 0, 0, 0.1, 0.8, 0.1, 0],
  3: [0, 0, 0, 0, 0.3, 0.1, 0.6, 0],
};
const uniform = new Array(VOCAB.length).fill(1 / VOCAB.length);
const table = {
  async begin() { return { path: [], logprobs: Float32Array.from(P[1], Math.log) }; },
  async advance(state, id) {
    return [state.logprobs[id], { path: [...state.path, id], logprobs: Float32Array.from(P[id] || uniform, Math.log) }];
  },
};

test('a left-out mark: branches, marginal and restoration as defined', async () => {
  const inference = new PunctuationInference(table, VOCAB);
  assert.deepEqual(inference.marks, [2, 3, 7]);
  const start = await inference.begin();
  assert.equal(start.branches.length, 0);
  const said = await inference.advance(start, 4);
  assert.deepEqual(said.branches.map((b) => b.mark), [2, 3]);       // ";" has P 0.1 but is third
  const let_ = 0.07 + 0.5 * 0.8 + 0.2 * 0.1;
  assert.ok(Math.abs(said.ranked[5] - Math.log(let_)) < 1e-6);
  assert.deepEqual((await inference.advance(said, 5)).state.path, [4, 2, 5]);    // "said , let"
  assert.deepEqual((await inference.advance(said, 6)).state.path, [4, 3, 6]);    // "said . there"
  const there = await inference.advance(start, 6);                   // uniform after "there"
  assert.deepEqual((await inference.advance(there, 4)).state.path, [6, 4]);     // no mark helps
  const typed = await inference.advance(said, 2);                    // a typed mark: nothing inferred
  assert.equal(typed.branches.length, 0);
  assert.equal(typed.ranked, typed.logprobs);
  const off = new PunctuationInference(table, VOCAB, false);
  const plain = await off.advance(await off.begin(), 4);
  assert.equal(plain.branches.length, 0);
  assert.equal(plain.ranked, plain.logprobs);
});
