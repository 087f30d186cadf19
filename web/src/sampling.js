// Seeded sampling that gives the same words as the Python runtime (pocketlm.runtime.sampling).
//
// Generator: SplitMix64 (Steele, Lea and Flood 2014; the constants of Vigna's reference code).
// A sample's generator starts at state (first SplitMix64 output for `seed`) + sample number,
// and each draw is u = (next() >> 11) * 2^-53, uniform in [0, 1).
//
// One token from a row of float32 log-probabilities, all in float64 and in this order:
//   1. z = logprobs (exact widening); the banned id (<unk> unless allowUnk) is -Infinity
//   2. temperature 0: the first index of the largest z, no draw
//   3. z = z / temperature
//   4. 0 < topK < vocab: drop every z below the topK-th largest z (ties at it are kept)
//   5. w = exp(z - max z), 0 where dropped
//   6. topP < 1: visit w largest first (ties: lower index first), keeping an entry while the
//      sum of those visited before it is < topP * (sum of w in index order); the rest are 0
//   7. one draw u; target = u * (sum of w in index order); the token is the first index whose
//      running sum (index order) exceeds target (rounding guard: the last nonzero w)
// Sums are plain left-to-right float64 additions (numpy's cumsum does the same).
//
// The settings' defaults and limits are SAMPLING (constants.js, generated from the Python
// runtime's SamplingConfig by web/tools/constants.py).

import { SAMPLING } from './constants.js';
import { InputError } from './errors.js';

const MASK = (1n << 64n) - 1n;
const GAMMA = 0x9e3779b97f4a7c15n;

function mix(z) {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
  return z ^ (z >> 31n);
}

/** A seed as an unsigned 64-bit BigInt (integers are taken modulo 2^64). */
export function seedValue(seed) {
  if (seed === undefined || seed === null) {
    const words = new Uint32Array(2);
    globalThis.crypto.getRandomValues(words);
    return (BigInt(words[0]) << 32n) | BigInt(words[1]);
  }
  if (typeof seed === 'bigint') return BigInt.asUintN(64, seed);
  if (Number.isSafeInteger(seed)) return BigInt.asUintN(64, BigInt(seed));
  throw new InputError(`seed must be an integer (a safe integer or a BigInt), got ${seed}`);
}

/** SplitMix64 with 53-bit uniform doubles. */
export class SplitMix64 {
  constructor(state) {
    this.state = BigInt.asUintN(64, state);
  }

  /** The generator of sample `index` for `seed`. */
  static forSample(seed, index = 0) {
    const first = new SplitMix64(seedValue(seed)).next();
    return new SplitMix64(first + BigInt(index));
  }

  next() {
    this.state = (this.state + GAMMA) & MASK;
    return mix(this.state);
  }

  /** Uniform in [0, 1) with 53 random bits. */
  random() {
    return Number(this.next() >> 11n) / 9007199254740992;
  }
}

function argmax(z) {
  let best = 0;
  for (let i = 1; i < z.length; i++) if (z[i] > z[best]) best = i;
  return best;
}

/** The limits of a setting in words: '>= 0', 'in (0, 1]', with 'an integer' when it must be one. */
function limitText({ minimum, maximum, minOpen, maxOpen, integer }) {
  const kind = integer ? 'an integer ' : '';
  if (minimum !== undefined && maximum !== undefined) {
    return `${kind}in ${minOpen ? '(' : '['}${minimum}, ${maximum}${maxOpen ? ')' : ']'}`;
  }
  if (minimum !== undefined) return `${kind}${minOpen ? '>' : '>='} ${minimum}`;
  return `${kind}${maxOpen ? '<' : '<='} ${maximum}`;
}

function inside(value, { minimum, maximum, minOpen, maxOpen, integer }) {
  if (typeof value !== 'number' || Number.isNaN(value)) return false;
  if (integer && !Number.isInteger(value)) return false;
  if (minimum !== undefined && (value < minimum || (minOpen && value === minimum))) return false;
  return !(maximum !== undefined && (value > maximum || (maxOpen && value === maximum)));
}

/**
 * Check generation settings ({maxWords, temperature, topK, topP, ...}) against their limits in
 * SAMPLING; throws InputError naming the first one outside them.
 */
export function checkSampling(settings) {
  for (const [name, value] of Object.entries(settings)) {
    const limits = SAMPLING[name];
    if (!limits || (limits.minimum === undefined && limits.maximum === undefined)) continue;
    if (!inside(value, limits)) {
      throw new InputError(`generate: ${name} must be ${limitText(limits)}, got ${value}`);
    }
  }
}

/** One token id sampled from a row of log-probabilities (see the procedure above). */
export function pick(logprobs, rng, { temperature = SAMPLING.temperature.default,
  topK = SAMPLING.topK.default, topP = SAMPLING.topP.default, banned = null } = {}) {
  const vocab = logprobs.length;
  const z = Float64Array.from(logprobs);
  if (banned !== null) z[banned] = -Infinity;
  if (temperature === 0) return argmax(z);
  const u = rng.random();
  if (temperature !== 1) for (let i = 0; i < vocab; i++) z[i] /= temperature;
  if (topK > 0 && topK < vocab) {
    const sorted = Float64Array.from(z).sort();
    const kth = sorted[vocab - topK];
    for (let i = 0; i < vocab; i++) if (z[i] < kth) z[i] = -Infinity;
  }
  const top = z[argmax(z)];
  if (!Number.isFinite(top)) return argmax(z);
  const w = new Float64Array(vocab);
  for (let i = 0; i < vocab; i++) w[i] = z[i] === -Infinity ? 0 : Math.exp(z[i] - top);
  if (topP < 1) {
    let total = 0;
    for (let i = 0; i < vocab; i++) total += w[i];
    const order = Array.from({ length: vocab }, (_, i) => i);
    order.sort((a, b) => (w[b] - w[a]) || (a - b));
    const limit = topP * total;
    let before = 0;
    for (const i of order) {
      const value = w[i];
      if (!(before < limit)) w[i] = 0;
      before += value;
    }
  }
  let total = 0;
  for (let i = 0; i < vocab; i++) total += w[i];
  const target = u * total;
  let running = 0;
  let last = 0;
  for (let i = 0; i < vocab; i++) {
    if (w[i] > 0) last = i;
    running += w[i];
    if (running > target) return i;
  }
  return last;
}
