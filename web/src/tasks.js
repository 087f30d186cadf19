// Classifier and Tagger: the classify and tag model folders, as the Python runtime's
// classifier.py and tagger.py run them (the same numbers within float rounding).
//
//   texts -> pieces (tokenizer.encodePieces) + features (features.js), padded with 0
//         -> tokens, shapes, suffixes [B, L] int64 + lengths [B] (an empty text runs as one <eos>)
//   classify.onnx -> logprobs [B, C] -> labels sorted by probability
//   tag.onnx      -> logprobs [B, L, T] -> Viterbi over the allowed BIO2 transitions -> tags
//                 -> entity spans (CoNLL rules), with string offsets into the text

import { InputError } from './errors.js';
import { features } from './features.js';

/** Rows x padded length one graph run may take (as the Python runtime's BATCH_PIECES). */
export const BATCH_PIECES = 1 << 16;

/** ['B', 'NAME'] for 'B-NAME', ['I', ...] for I-, else ['O', '']. */
export function splitTag(tag) {
  if ((tag.startsWith('B-') || tag.startsWith('I-')) && tag.length > 2) return [tag[0], tag.slice(2)];
  return ['O', ''];
}

/** Entity spans [start, end, type] of BIO2 tags by the CoNLL rules (as metrics.bio_spans). */
export function bioSpans(tags) {
  const spans = [];
  let start = -1;
  let kind = '';
  tags.forEach((tag, i) => {
    const [prefix, label] = splitTag(tag);
    if (prefix === 'I' && start >= 0 && label === kind) return;
    if (start >= 0) spans.push([start, i, kind]);
    [start, kind] = prefix !== 'O' ? [i, label] : [-1, ''];
  });
  if (start >= 0) spans.push([start, tags.length, kind]);
  return spans;
}

/** Which tags may open a sentence, and which may follow which ([prev][next]). */
export function allowedTransitions(labels) {
  const parts = labels.map(splitTag);
  const start = parts.map(([prefix]) => prefix !== 'I');
  const transition = parts.map(([prv, pt]) => parts.map(([nxt, nt]) => nxt !== 'I' || (prv !== 'O' && pt === nt)));
  return { start, transition };
}

/** Best allowed tag path through `logprobs` (n x T, row-major); ties: the lower tag index. */
export function viterbi(logprobs, n, T, { start, transition }) {
  if (n === 0) return [];
  let score = Array.from({ length: T }, (_, j) => (start[j] ? logprobs[j] : -Infinity));
  const back = [];
  for (let t = 1; t < n; t++) {
    const from = new Array(T);
    const next = new Array(T);
    for (let j = 0; j < T; j++) {
      let best = -Infinity;
      let arg = 0;
      for (let i = 0; i < T; i++) {
        const v = transition[i][j] ? score[i] : -Infinity;
        if (v > best) { best = v; arg = i; }
      }
      from[j] = arg;
      next[j] = best + logprobs[t * T + j];
    }
    back.push(from);
    score = next;
  }
  let last = 0;
  for (let j = 1; j < T; j++) if (score[j] > score[last]) last = j;
  const path = [last];
  for (let t = n - 1; t > 0; t--) path.push(back[t - 1][path[path.length - 1]]);
  return path.reverse();
}

function int64(values) {
  return BigInt64Array.from(values, (v) => BigInt(v));
}

class TaskModel {
  /** Use the loaders' `loadModel` rather than this constructor. */
  constructor(ort, manifest, tokenizer, sessions, precision) {
    this.ort = ort;
    this.manifest = manifest;
    this.tokenizer = tokenizer;
    this.session = sessions[manifest.task];
    this.precision = precision;
    this.task = manifest.task;
    this.labels = manifest.labels;
    this.eosId = Number(manifest.special_tokens.eos.id);
  }

  /** A text's pieces (as written), ids, features and string offsets. */
  encode(text) {
    if (typeof text !== 'string') throw new InputError(`expected a text (string), got ${typeof text}`);
    const pieces = this.tokenizer.encodePieces(text);
    const words = pieces.map((p) => p.word);
    const [shapes, suffixes] = features(words);
    return { text, words, ids: pieces.map((p) => p.id), shapes, suffixes, offsets: pieces.map((p) => [p.start, p.end]) };
  }

  /** The graph's log-probabilities per encoded text (Float32Array: C, or n x T), input order. */
  async _run(encoded) {
    const order = encoded.map((_, i) => i).sort((a, b) => encoded[a].ids.length - encoded[b].ids.length);
    const out = new Array(encoded.length);
    for (let start = 0; start < order.length;) {
      let end = start + 1;
      while (end < order.length && (end + 1 - start) * Math.max(1, encoded[order[end]].ids.length) <= BATCH_PIECES) end++;
      const rows = order.slice(start, end).map((i) => encoded[i]);
      const values = await this._runRows(rows);
      order.slice(start, end).forEach((i, k) => { out[i] = values[k]; });
      start = end;
    }
    return out;
  }

  async _runRows(rows) {
    const lengths = rows.map((r) => Math.max(1, r.ids.length));
    const width = Math.max(...lengths);
    const arrays = { tokens: new BigInt64Array(rows.length * width), shapes: new BigInt64Array(rows.length * width),
      suffixes: new BigInt64Array(rows.length * width) };
    rows.forEach((r, row) => {
      if (!r.ids.length) arrays.tokens[row * width] = BigInt(this.eosId);
      r.ids.forEach((id, t) => {
        arrays.tokens[row * width + t] = BigInt(id);
        arrays.shapes[row * width + t] = BigInt(r.shapes[t]);
        arrays.suffixes[row * width + t] = BigInt(r.suffixes[t]);
      });
    });
    const { Tensor } = this.ort;
    const feeds = { lengths: new Tensor('int64', int64(lengths), [rows.length]) };
    for (const [name, data] of Object.entries(arrays)) feeds[name] = new Tensor('int64', data, [rows.length, width]);
    const result = await this.session.run(feeds);
    const data = result.logprobs.data;
    const C = this.labels.length;
    if (this.task === 'tag') return rows.map((r, row) => data.slice(row * width * C, (row * width + r.ids.length) * C));
    return rows.map((_, row) => data.slice(row * C, (row + 1) * C));
  }
}

/** One label per text. */
export class Classifier extends TaskModel {
  /** [{text, label, probability, labels: [{label, probability}]}] per text, the topK most probable. */
  async predict(texts, { topK = 1 } = {}) {
    const list = typeof texts === 'string' ? [texts] : Array.from(texts);
    if (!Number.isInteger(topK) || topK < 1) throw new InputError(`topK must be a whole number of at least 1, got ${topK}`);
    const encoded = list.map((t) => this.encode(t));
    const values = await this._run(encoded);
    return encoded.map((e, i) => {
      const lp = values[i];
      const order = Array.from(lp.keys()).sort((a, b) => (lp[b] - lp[a]) || (a - b)).slice(0, topK);
      const labels = order.map((k) => ({ label: this.labels[k], probability: Math.exp(lp[k]) }));
      return { text: e.text, label: labels[0].label, probability: labels[0].probability, labels };
    });
  }

  /** The graph's log-probabilities of each text (Float32Array over the labels). */
  async logProbs(texts) {
    return this._run(Array.from(texts, (t) => this.encode(t)));
  }
}

/** BIO2 tags per word piece, read as entities. */
export class Tagger extends TaskModel {
  constructor(...args) {
    super(...args);
    this.transitions = allowedTransitions(this.labels);
  }

  /** {text, words, tags, offsets, probabilities, entities: [{text, type, start, end, first, last}]}. */
  async tag(text) {
    return (await this.tagBatch([text]))[0];
  }

  /** tag() for many texts, in input order. */
  async tagBatch(texts) {
    const encoded = Array.from(texts, (t) => this.encode(t));
    const values = await this._run(encoded);
    const T = this.labels.length;
    return encoded.map((e, i) => {
      const path = viterbi(values[i], e.ids.length, T, this.transitions);
      const tags = path.map((k) => this.labels[k]);
      const entities = bioSpans(tags).map(([a, b, type]) => ({
        text: e.text.slice(e.offsets[a][0], e.offsets[b - 1][1]), type,
        start: e.offsets[a][0], end: e.offsets[b - 1][1], first: a, last: b - 1,
      }));
      return { text: e.text, words: e.words, tags, offsets: e.offsets,
        probabilities: path.map((k, t) => Math.exp(values[i][t * T + k])), entities };
    });
  }
}

/** The class of each task model (the Python runtime's tasks.py registry). */
export const TASK_CLASSES = { classify: Classifier, tag: Tagger };
