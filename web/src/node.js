// Node loader: a pocketlm model folder on disk, run by onnxruntime-node (CPU).
//
//   import { loadModel } from 'pocketlm';
//   const lm = await loadModel('runs/kjv/model');
//   console.log(await lm.score('in the beginning god created the heaven and the earth .'));

import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { ArtifactError } from './errors.js';
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

/**
 * Open the model folder `dir` (a LanguageModel, or a Classifier / Tagger for a classify / tag
 * folder). Options: precision ('fp32' | 'int8'), threads (onnxruntime
 * intra-op threads; default onnxruntime's choice), verify (check SHA-256 hashes; default true).
 */
export async function loadModel(dir, { precision = 'fp32', threads = 0, verify = true } = {}) {
  const info = await stat(dir).catch(() => null);
  if (!info || !info.isDirectory()) {
    throw new ArtifactError(`${dir}: no such folder; create it with \`pocketlm export\``);
  }
  const options = {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', executionMode: 'sequential',
    interOpNumThreads: 1, logSeverityLevel: 3, ...(threads ? { intraOpNumThreads: threads } : {}),
    // int8 graphs: dequantise the LSTM's constant int8 weights once, at load (runtime/graphs.py)
    extra: { session: { disable_quant_qdq: '1' } },
  };
  const source = {
    where: dir,
    read: (name) => readFile(path.join(dir, name)),
    // with a shared weights file onnxruntime reads it beside the graph's path
    createSession: (name, bytes, shared) => ort.InferenceSession.create(
      shared ? path.join(dir, name) : bytes, options),
  };
  return openModel(source, ort, { precision, verify });
}
