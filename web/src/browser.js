// Browser loader: a pocketlm model folder served over HTTP, run by onnxruntime-web (wasm).
//
//   import { loadModel } from 'pocketlm';            // with an import map for onnxruntime-web
//   const lm = await loadModel('./model/');
//   console.log(await lm.score('the apple and pear salad'));

import * as ort from 'onnxruntime-web';
import { openModel } from './model.js';

export * from './errors.js';
export { Keyboard, PrefixIndex, Typing } from './keyboard.js';
export { PunctuationInference, isPunctuation } from './punctuation.js';
export { channelLogprob } from './qwerty.js';
export { LanguageModel, State, detokenize } from './model.js';
export { SplitMix64, pick } from './sampling.js';
export { Classifier, Tagger, bioSpans, viterbi } from './tasks.js';
export { SHAPES, features, shapeId, suffixId } from './features.js';
export { Tokenizer } from './tokenizer.js';
export { ort };

/**
 * Open the model folder at URL `base` (a LanguageModel, Classifier or Tagger, by its task).
 * Options: precision ('fp32' | 'int8'), threads (wasm
 * threads; more than 1 needs a cross-origin isolated page), verify (check SHA-256; default true),
 * wasmPaths (where onnxruntime-web's .wasm/.mjs files are), fetch (a fetch function).
 */
export async function loadModel(base, { precision = 'fp32', threads = 1, verify = true, wasmPaths = null,
  fetch: fetchFile = globalThis.fetch.bind(globalThis) } = {}) {
  const root = base.endsWith('/') ? base : `${base}/`;
  ort.env.wasm.numThreads = threads;
  if (wasmPaths) ort.env.wasm.wasmPaths = wasmPaths;
  ort.env.logLevel = 'error';
  const source = {
    where: root.replace(/\/$/, ''),
    async read(name) {
      let response;
      try {
        response = await fetchFile(new URL(name, new URL(root, globalThis.location?.href)).href);
      } catch (error) {
        throw Object.assign(new Error(`cannot fetch ${name}: ${error.message}`), { code: 'ENOENT' });
      }
      if (!response.ok) throw Object.assign(new Error(`${name}: HTTP ${response.status}`), { code: 'ENOENT' });
      return new Uint8Array(await response.arrayBuffer());
    },
    createSession: (name, bytes, shared) => ort.InferenceSession.create(bytes, {
      executionProviders: ['wasm'], graphOptimizationLevel: 'all',
      extra: { session: { disable_quant_qdq: '1' } }, // int8 LSTM weights dequantised at load
      ...(shared ? { externalData: [{ path: shared.name, data: shared.bytes }] } : {}),
    }),
  };
  return openModel(source, ort, { precision, verify });
}
