import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../src/errors.js';
import { SAMPLING } from '../src/constants.js';
import { SplitMix64, checkSampling, pick } from '../src/sampling.js';

test('SplitMix64 matches the reference outputs', () => {
  // the first outputs of Vigna's splitmix64.c seeded with 1234567
  const g = new SplitMix64(1234567n);
  assert.deepEqual([g.next(), g.next(), g.next()],
    [6457827717110365317n, 3203168211198807973n, 9817491932198370423n]);
});

test('uniforms lie in [0, 1) and samples have their own streams', () => {
  const a = SplitMix64.forSample(7, 0);
  const b = SplitMix64.forSample(7, 1);
  const xs = Array.from({ length: 1000 }, () => a.random());
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  assert.notEqual(xs[0], b.random());
  assert.equal(SplitMix64.forSample(7, 0).random(), xs[0]);
  assert.equal(SplitMix64.forSample(-1).random(), SplitMix64.forSample(2n ** 64n - 1n).random());
});

const logprobs = Float32Array.from([Math.log(0.05), Math.log(0.5), Math.log(0.3), Math.log(0.15)]);

test('greedy, top-k and top-p', () => {
  const rng = SplitMix64.forSample(0);
  assert.equal(pick(logprobs, rng, { temperature: 0 }), 1);
  for (let i = 0; i < 200; i++) {
    assert.ok([1, 2].includes(pick(logprobs, rng, { topK: 2 })));
    assert.ok([1, 2].includes(pick(logprobs, rng, { topP: 0.6 })));
    assert.notEqual(pick(logprobs, rng, { banned: 0 }), 0);           // <unk> never
  }
});

test('frequencies follow the distribution', () => {
  const rng = SplitMix64.forSample(3);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 20000; i++) counts[pick(logprobs, rng, {})] += 1;
  [0.05, 0.5, 0.3, 0.15].forEach((p, i) => assert.ok(Math.abs(counts[i] / 20000 - p) < 0.015, `${i}: ${counts}`));
});

test('bad settings are InputErrors', () => {
  assert.throws(() => checkSampling({ maxWords: 3, temperature: -1, topK: 0, topP: 1 }), InputError);
  assert.throws(() => checkSampling({ maxWords: 3, temperature: 1, topK: 0, topP: 0 }), InputError);
  assert.throws(() => SplitMix64.forSample(1.5), InputError);
  assert.throws(() => checkSampling({ maxWords: 2.5 }), /maxWords must be an integer >= 0, got 2.5/);
  assert.throws(() => checkSampling({ topP: 1.5 }), /topP must be in \(0, 1\], got 1.5/);
  assert.throws(() => checkSampling({ temperature: NaN }), InputError);
});

test('the defaults pass their own limits, and so do the edges', () => {
  const defaults = Object.fromEntries(Object.entries(SAMPLING).map(([k, v]) => [k, v.default]));
  checkSampling(defaults);
  checkSampling({ maxWords: 0, temperature: 0, topK: 0, topP: 1e-9 });
});
