// LanguageModel: score, rank, advance word by word and generate with a pocketlm model folder.
// The core, shared by the Node and browser loaders, which supply onnxruntime and file access.
//
// The scoring convention is the Python runtime's (docs/runtime.md): natural logs, zero state,
// <eos> as the first input, every word and then the final <eos> predicted, <unk> for a word
// outside the vocabulary (counted in `oov`).
//
//   score.onnx  tokens [B, L] + lengths [B] -> logprobs [B, L]              whole sentences
//   step.onnx   token [B] + state_* [layers, B, hidden] -> logprobs [B, V] + new_state_*

import { ArtifactError, InputError, PocketLMError } from './errors.js';
import { MANIFEST, TASK_GRAPHS, checkFile, checkManifest, missingFile, neededFiles, taskOf } from './folder.js';
import { BATCH_FLOATS, SAMPLING, SCORE_BUDGET } from './constants.js';
import { SplitMix64, checkSampling, pick } from './sampling.js';
import { TASK_CLASSES } from './tasks.js';
import { Tokenizer } from './tokenizer.js';

// BATCH_FLOATS: log-probabilities one score-graph run may produce; SCORE_BUDGET: a sentence whose
// (length x vocabulary) exceeds it goes through the step graph (both the Python runtime's).
export { BATCH_FLOATS, SCORE_BUDGET };

const NO_SPACE_BEFORE = /^[.,;:!?)\]}'"]+$/;
const NO_SPACE_AFTER = new Set(['(', '[', '{', "'"]);

/** Join word tokens with spaces, without a space before closing punctuation. */
export function detokenize(tokens) {
  let out = '';
  let glue = true;
  for (const token of tokens) {
    if (out && !glue && !NO_SPACE_BEFORE.test(token)) out += ' ';
    out += token;
    glue = NO_SPACE_AFTER.has(token);
  }
  return out;
}

/** The recurrent state of `rows` hypotheses and each one's next-token log-probabilities. */
export class State {
  constructor(arrays, logprobs, rows) {
    this.arrays = arrays;       // {state_h: Float32Array [layers * rows * hidden], ...}
    this.logprobs = logprobs;   // Float32Array [rows * vocab]
    this.rows = rows;
  }
}

function int64(values) {
  return BigInt64Array.from(values, (v) => BigInt(v));
}

export class LanguageModel {
  /** Use `openModel` (or the loaders' `loadModel`) rather than this constructor. */
  constructor(ort, manifest, tokenizer, sessions, precision) {
    this.ort = ort;
    this.manifest = manifest;
    this.tokenizer = tokenizer;
    this.sessions = sessions;
    this.precision = precision;
    this.vocabSize = Number(manifest.vocab_size);
    this.unkId = Number(manifest.special_tokens.unk.id);
    this.eosId = Number(manifest.special_tokens.eos.id);
    this.stateSpec = manifest.state;
  }

  // -- vocabulary ---------------------------------------------------------------------------

  /** Token ids of a sentence, without <eos> markers. */
  tokenize(sentence) {
    return this.tokenizer.encode(sentence);
  }

  /** True when `word` normalises to one in-vocabulary token. */
  has(word) {
    if (typeof word !== 'string') return false;
    const ids = this.tokenizer.encode(word);
    return ids.length === 1 && ids[0] !== this.unkId;
  }

  // -- whole sentences ----------------------------------------------------------------------

  async _scoreRun(lists) {
    const lengths = lists.map((ids) => ids.length + 1);
    const width = Math.max(...lengths);
    const tokens = new BigInt64Array(lists.length * width).fill(BigInt(this.eosId));
    lists.forEach((ids, row) => ids.forEach((id, t) => { tokens[row * width + t] = BigInt(id); }));
    const { Tensor } = this.ort;
    const result = await this.sessions.score.run({
      tokens: new Tensor('int64', tokens, [lists.length, width]),
      lengths: new Tensor('int64', int64(lengths), [lists.length]),
    });
    const out = result.logprobs.data;
    return lists.map((_, row) => Float64Array.from(out.subarray(row * width, row * width + lengths[row])));
  }

  async _bySteps(lists, bos) {
    const rows = lists.length;
    const targets = lists.map((ids) => [...ids, this.eosId]);
    const width = Math.max(...targets.map((t) => t.length));
    const out = targets.map((t) => new Float64Array(t.length));
    let state = bos ? await this.begin(rows) : this.nullState(rows);
    for (let t = 0; t < width; t++) {
      const fed = targets.map((ids) => (t < ids.length ? ids[t] : this.eosId));
      fed.forEach((id, r) => { if (t < targets[r].length) out[r][t] = state.logprobs[r * this.vocabSize + id]; });
      if (t + 1 < width) state = await this._step(fed, state);
    }
    return out;
  }

  /** ln P of each predicted token of each id list (len + 1 values, the final <eos> last). */
  async _predicted(idLists, { batchSize = 64, bos = true } = {}) {
    if (!(batchSize >= 1)) throw new InputError(`batchSize must be at least 1, got ${batchSize}`);
    const results = new Array(idLists.length);
    const order = idLists.map((_, i) => i).sort((a, b) => idLists[a].length - idLists[b].length);
    const long = bos ? order.filter((i) => (idLists[i].length + 1) * this.vocabSize > SCORE_BUDGET) : order;
    const longSet = new Set(long);
    const short = order.filter((i) => !longSet.has(i));
    for (let start = 0; start < short.length;) {
      let end = start + 1;
      while (end < short.length && end - start < batchSize
             && (end + 1 - start) * (idLists[short[end]].length + 1) * this.vocabSize <= BATCH_FLOATS) end++;
      const chunk = short.slice(start, end);
      const values = await this._scoreRun(chunk.map((i) => idLists[i]));
      chunk.forEach((i, k) => { results[i] = values[k]; });
      start = end;
    }
    for (let start = 0; start < long.length; start += batchSize) {
      const chunk = long.slice(start, start + batchSize);
      const values = await this._bySteps(chunk.map((i) => idLists[i]), bos);
      chunk.forEach((i, k) => { results[i] = values[k]; });
    }
    return results;
  }

  /** [{sentence, logprob, tokens, oov}] in input order (logprob in nats). */
  async analyze(sentences, { batchSize = 64, bos = true, eos = true } = {}) {
    const list = Array.from(sentences);
    const idLists = list.map((s) => this.tokenizer.encode(s));
    const logprobs = await this._predicted(idLists, { batchSize, bos });
    return list.map((sentence, i) => {
      const values = eos ? logprobs[i] : logprobs[i].subarray(0, logprobs[i].length - 1);
      let logprob = 0;
      for (const v of values) logprob += v;
      const tokens = values.length - (bos || !values.length ? 0 : 1);
      const oov = idLists[i].filter((id) => id === this.unkId).length;
      return { sentence, logprob, tokens, oov };
    });
  }

  /** ln P(sentence) in nats, the final <eos> included (unless eos: false). */
  async score(sentence, options = {}) {
    return (await this.analyze([sentence], options))[0].logprob;
  }

  /** ln P of many sentences, in input order. */
  async scoreBatch(sentences, options = {}) {
    return (await this.analyze(sentences, options)).map((s) => s.logprob);
  }

  /** Candidates best first (highest log-probability; ties keep input order). */
  async rank(candidates) {
    const scored = await this.analyze(candidates);
    return scored.map((s, i) => [s, i]).sort((a, b) => (b[0].logprob - a[0].logprob) || (a[1] - b[1]))
      .map(([s]) => s);
  }

  /** One {word, token, logprob, oov} per predicted token, the final <eos> last. */
  async fullScores(sentence, { bos = true, eos = true } = {}) {
    const words = this.tokenizer.encodeWords(sentence);
    const [logprobs] = await this._predicted([words.map((w) => w.id)], { batchSize: 1, bos });
    const out = words.map((w, i) => ({
      word: w.word, token: this.tokenizer.token(w.id), logprob: logprobs[i], oov: w.id === this.unkId,
    }));
    out.push({ word: '<eos>', token: '<eos>', logprob: logprobs[words.length], oov: false });
    return eos ? out : out.slice(0, -1);
  }

  // -- word by word -------------------------------------------------------------------------

  /** The zero state for `rows` rows: {state_h: Float32Array, ...}. */
  initialState(rows = 1) {
    const arrays = {};
    for (const spec of this.stateSpec) {
      const size = spec.shape.reduce((n, d) => n * (d === 'batch' ? rows : Number(d)), 1);
      arrays[spec.input] = new Float32Array(size);
    }
    return arrays;
  }

  _dims(spec, rows) {
    return spec.shape.map((d) => (d === 'batch' ? rows : Number(d)));
  }

  async _step(ids, state) {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new InputError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
      }
    }
    const { Tensor } = this.ort;
    const feeds = { token: new Tensor('int64', int64(ids), [ids.length]) };
    for (const spec of this.stateSpec) {
      feeds[spec.input] = new Tensor('float32', state.arrays[spec.input], this._dims(spec, ids.length));
    }
    const result = await this.sessions.step.run(feeds);
    const arrays = {};
    for (const spec of this.stateSpec) arrays[spec.input] = result[spec.output].data;
    return new State(arrays, result.logprobs.data, ids.length);
  }

  /** Rows with no context (nothing fed): the first token advanced from it scores 0. */
  nullState(rows = 1) {
    if (!(rows >= 1)) throw new InputError(`a state needs at least one row, got ${rows}`);
    return new State(this.initialState(rows), new Float32Array(rows * this.vocabSize), rows);
  }

  /** Rows at the start of a sentence: zero state, <eos> fed. */
  async begin(rows = 1) {
    return this._step(new Array(rows).fill(this.eosId), this.nullState(rows));
  }

  _wordIds(word) {
    if (typeof word === 'number') return [word];
    if (typeof word === 'string') return this.tokenizer.encode(word);
    throw new InputError(`a word is a string or a token id (number), got ${typeof word}`);
  }

  /** Feed a word (string, tokenised; or a token id) to a one-row state: [ln P(word | state), new state]. */
  async advance(state, word) {
    if (!(state instanceof State) || state.rows !== 1) {
      throw new InputError('advance takes a one-row State (from begin(), nullState() or advance)');
    }
    let total = 0;
    for (const id of this._wordIds(word)) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new InputError(`advance: token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
      }
      total += state.logprobs[id];
      state = await this._step([id], state);
    }
    return [total, state];
  }

  /** ln P(<eos> | a one-row state). */
  end(state) {
    if (!(state instanceof State) || state.rows !== 1) throw new InputError('end takes a one-row State');
    return state.logprobs[this.eosId];
  }

  // -- generation ---------------------------------------------------------------------------

  _stopIds(stop) {
    const ids = new Set();
    for (const word of typeof stop === 'string' ? [stop] : stop) {
      const got = this.tokenizer.encode(word);
      if (got.length !== 1) throw new InputError(`stop word ${JSON.stringify(word)} is ${got.length} tokens; give single words`);
      ids.add(got[0]);
    }
    return ids;
  }

  /**
   * Continue `prompt` word by word until <eos>, a stop word or maxWords: yields each word (or
   * [word, logprob] with logprobs: true). The same seed gives the same words as the Python
   * runtime's generate/stream.
   */
  async* stream(prompt = '', { maxWords = SAMPLING.maxWords.default,
    temperature = SAMPLING.temperature.default, topK = SAMPLING.topK.default,
    topP = SAMPLING.topP.default, seed = SAMPLING.seed.default,
    allowUnk = SAMPLING.allowUnk.default, stop = SAMPLING.stop.default, state = null,
    logprobs = false } = {}) {
    checkSampling({ maxWords, temperature, topK, topP });
    const stopIds = this._stopIds(stop);
    const rng = SplitMix64.forSample(seed, 0);
    let current = state || await this.begin(1);
    for (const id of this.tokenizer.encode(prompt)) current = await this._step([id], current);
    const settings = { temperature, topK, topP, banned: allowUnk ? null : this.unkId };
    for (let n = 0; n < maxWords; n++) {
      const token = pick(current.logprobs, rng, settings);
      if (token === this.eosId) return;
      const word = this.tokenizer.token(token);
      const logprob = current.logprobs[token];
      current = await this._step([token], current);
      yield logprobs ? [word, logprob] : word;
      if (stopIds.has(token)) return;
    }
  }

  /** The continuation of `prompt` as a string (see stream for the options). */
  async generate(prompt = '', options = {}) {
    const words = [];
    for await (const word of this.stream(prompt, { ...options, logprobs: false })) words.push(word);
    return detokenize(words);
  }
}

/**
 * Open a model folder: a LanguageModel, or the Classifier / Tagger its manifest's task names.
 * `source` gives file access: {where, read(name) -> Promise<Uint8Array>
 * (rejecting with {code: 'ENOENT'} for a missing file), createSession(name, bytes, shared)}.
 */
export async function openModel(source, ort, { precision = 'fp32', verify = true } = {}) {
  const where = source.where;
  const readFile = async (name) => {
    try {
      return await source.read(name);
    } catch (error) {
      if (error && error.code === 'ENOENT') {
        if (name === MANIFEST) {
          throw new ArtifactError(`${where}: no ${MANIFEST}, so it is not a pocketlm model folder; ` +
            'create one with `pocketlm export`');
        }
        throw missingFile(where, name);
      }
      throw error;
    }
  };
  const manifest = checkManifest(new TextDecoder().decode(await readFile(MANIFEST)), where);
  const names = neededFiles(manifest, precision, where);
  const bytes = {};
  await Promise.all(names.map(async (name) => {
    bytes[name] = await readFile(name);
    await checkFile(manifest, name, bytes[name], where, verify);
  }));
  let tokenizerJson;
  try {
    tokenizerJson = JSON.parse(new TextDecoder().decode(bytes[manifest.tokenizer]));
  } catch (error) {
    throw new ArtifactError(`${where}/${manifest.tokenizer}: unreadable (${error.message}); re-export the model`);
  }
  const tokenizer = new Tokenizer(tokenizerJson);
  const shared = (manifest.weights || {})[precision];
  const sessions = {};
  const task = taskOf(manifest);
  for (const graph of TASK_GRAPHS[task]) {
    const name = manifest.graphs[graph].files[precision];
    try {
      sessions[graph] = await source.createSession(name, bytes[name], shared ? { name: shared, bytes: bytes[shared] } : null);
    } catch (error) {
      if (error instanceof PocketLMError) throw error;
      throw new ArtifactError(`${where}/${name}: onnxruntime cannot load it (${String(error.message).split('\n')[0]}); ` +
        're-export the model');
    }
  }
  const Model = task === 'lm' ? LanguageModel : TASK_CLASSES[task];
  return new Model(ort, manifest, tokenizer, sessions, precision);
}
