// Unit tests of the keyboard's parts that need no model: the QWERTY channel and the prefix
// index (suggestions on a real model are compared with Python in tests/test_web_keyboard.py).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EDIT_LOGPROB } from '../src/constants.js';
import { PrefixIndex, adjacent, channelLogprob, isWord } from '../src/keyboard.js';

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
