// Runs one JSON request against a model folder and prints one JSON answer: the bridge the
// Python tests and bench/web.py use to compare this package with the Python runtime.
//
//   node tools/driver.js < request.json
//   request: {"model": DIR, "precision": "fp32", "threads": 1,
//             "tokenize": [text, ...], "tokenizer": PATH (tokenizer.json alone, no model),
//             "score": [sentence, ...], "steps": [sentence, ...],
//             "generate": [{"prompt": ..., "maxWords": 30, "seed": 0, ...}, ...],
//             "fullScores": sentence, "rank": [candidate, ...], "timing": true,
//             "pieces": [text, ...] (with "tokenizer"), "features": [word, ...],
//             "classify": [text, ...], "topK": 1, "logProbs": [text, ...], "tag": [text, ...],
//             "repeats": n (classify and tag run n more times after the answer's run, each timed:
//                       "classifyRunsMs", "tagRunsMs"),
//             "suggest": [{"context", "prefix", "k"}, ...], "correct": [{"context", "typed", "k"}],
//             "typing": [keystrokes or {"keys", "cacheWeight", "cacheWindow"}, ...]
//                       (suggestions after each; "\t" takes the first, "\b" deletes),
//             "typist": {"sentences": [...], "k": 3, "warmup": [...]} (tools/typist.js: savings and
//                       timings; the warmup sentences typed first, untimed),
//             "inferPunctuation": false (the keyboard reads contexts as typed; default true)}
//   answer:  the same keys with results; {"error": one line} for a bad folder or argument.

import { readFileSync } from 'node:fs';
import { features, Keyboard, loadModel, oneLine, PocketLMError, Tokenizer, Typing } from '../src/node.js';
import { typist } from './typist.js';

/** ms of each of `n` further calls of `run` (none when `n` is not given). */
async function timedRuns(n, run) {
  const ms = [];
  for (let i = 0; i < (n || 0); i++) {
    const t0 = performance.now();
    await run();
    ms.push(performance.now() - t0);
  }
  return ms;
}

async function answer(request) {
  const out = {};
  if (request.tokenizer) {
    const tokenizer = new Tokenizer(JSON.parse(readFileSync(request.tokenizer, 'utf8')));
    out.tokenize = (request.tokenize || []).map((text) => tokenizer.encode(text));
    out.words = (request.words || []).map((text) => tokenizer.encodeWords(text).map((w) => w.word));
    out.pieces = (request.pieces || []).map((text) => tokenizer.encodePieces(text));
    if (!request.model) return out;
  }
  if (request.features) out.features = features(request.features);
  if (!request.model) return out;
  const started = performance.now();
  const lm = await loadModel(request.model, {
    precision: request.precision || 'fp32', threads: request.threads || 0, verify: request.verify ?? true,
  });
  out.loadMs = performance.now() - started;
  if (request.tokenize && !out.tokenize) out.tokenize = request.tokenize.map((text) => lm.tokenize(text));
  if (request.score) {
    const t0 = performance.now();
    out.score = await lm.scoreBatch(request.score);
    out.scoreMs = performance.now() - t0;
    out.tokens = request.score.reduce((n, s) => n + lm.tokenize(s).length + 1, 0);
  }
  if (request.steps) {
    out.steps = [];
    for (const sentence of request.steps) {
      let [total, state] = [0, await lm.begin()];
      for (const id of lm.tokenize(sentence)) {
        const [logprob, next] = await lm.advance(state, id);
        total += logprob;
        state = next;
      }
      out.steps.push(total + lm.end(state));
    }
  }
  if (request.classify) {
    const t0 = performance.now();
    out.classify = await lm.predict(request.classify, { topK: request.topK || 1 });
    out.classifyMs = performance.now() - t0;
    out.classifyRunsMs = await timedRuns(request.repeats, () => lm.predict(request.classify, { topK: request.topK || 1 }));
  }
  if (request.logProbs) out.logProbs = (await lm.logProbs(request.logProbs)).map((v) => Array.from(v));
  if (request.tag) {
    const t0 = performance.now();
    out.tag = await lm.tagBatch(request.tag);
    out.tagMs = performance.now() - t0;
    out.tagRunsMs = await timedRuns(request.repeats, () => lm.tagBatch(request.tag));
  }
  const inferPunctuation = request.inferPunctuation ?? true;
  if (request.typist) {
    const typing = await Typing.create(new Keyboard(lm, { inferPunctuation }), { learn: false });
    const k = request.typist.k ?? 3;
    if (request.typist.warmup) await typist(typing, request.typist.warmup, k);
    out.typist = await typist(typing, request.typist.sentences, k);
  }
  if (request.suggest || request.correct || request.typing) {
    const keyboard = new Keyboard(lm, { inferPunctuation });
    out.suggest = [];
    for (const q of request.suggest || []) out.suggest.push(await keyboard.suggest(q.context, q.prefix ?? '', q.k ?? 3));
    out.correct = [];
    for (const q of request.correct || []) out.correct.push(await keyboard.correct(q.context, q.typed, q.k ?? 3));
    out.typing = [];
    for (const session of request.typing || []) {
      const { keys, ...options } = typeof session === 'string' ? { keys: session } : session;
      const typing = await Typing.create(keyboard, options);
      const trace = [];
      for (const key of keys) {
        if (key === '\t') {
          const first = typing.suggestions(1);
          if (first.length) await typing.accept(first[0].word);
        } else if (key === '\b') {
          typing.backspace();
        } else {
          await typing.type(key);
        }
        trace.push({ text: typing.text, suggestions: typing.suggestions(3), corrections: typing.corrections(3) });
      }
      out.typing.push(trace);
    }
  }
  if (request.rank) out.rank = await lm.rank(request.rank);
  if (request.fullScores !== undefined) out.fullScores = await lm.fullScores(request.fullScores);
  if (request.generate) {
    out.generate = [];
    const t0 = performance.now();
    let words = 0;
    for (const g of request.generate) {
      const got = [];
      for await (const word of lm.stream(g.prompt || '', g)) got.push(word);
      words += got.length;
      out.generate.push(got);
    }
    out.generateMs = performance.now() - t0;
    out.generatedWords = words;
  }
  return out;
}

let result;
try {
  result = await answer(JSON.parse(readFileSync(0, 'utf8')));
} catch (error) {
  if (!(error instanceof PocketLMError)) throw error;
  result = { error: oneLine(error) };
}
process.stdout.write(`${JSON.stringify(result)}\n`);
