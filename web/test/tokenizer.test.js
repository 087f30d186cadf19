// Unit tests of the tokenizer on hand-written tokenizer.json files (the parity with the Python
// tokenizers library on real vocabularies is tests/test_web.py's job).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArtifactError } from '../src/errors.js';
import { translateOniguruma } from '../src/regex.js';
import { Tokenizer, cleanText } from '../src/tokenizer.js';

const VOCAB = { '<unk>': 0, '<eos>': 1, the: 2, cat: 3, '.': 4, ',': 5, 'σ': 6, '<num>': 7, 'é': 8 };
const ADDED = [
  { id: 0, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  { id: 1, content: '<eos>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
];

function tokenizer(normalizer, preTokenizer, extra = {}) {
  return new Tokenizer({
    version: '1.0', truncation: null, padding: null, added_tokens: ADDED, normalizer,
    pre_tokenizer: preTokenizer, post_processor: null, decoder: null,
    model: { type: 'WordLevel', vocab: VOCAB, unk_token: '<unk>' }, ...extra,
  });
}

const INGEST = { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }] };

test('the ingest pipeline: NFKC, lowercase, words and punctuation', () => {
  const t = tokenizer(INGEST, { type: 'Whitespace' });
  assert.deepEqual(t.encode('The CAT, the cat.'), [2, 3, 5, 2, 3, 4]);
  assert.deepEqual(t.encode('ＴＨＥ'), [2]);                       // NFKC folds full-width letters
  assert.deepEqual(t.encode('e\u0301'), [8]);                       // and composes é
  assert.deepEqual(t.encode('dog'), [0]);
  assert.deepEqual(t.encode(''), []);
  assert.deepEqual(t.encode(' \t\n '), []);
});

test('a capital sigma lowercases to σ even at the end of a word', () => {
  assert.deepEqual(tokenizer(INGEST, { type: 'Whitespace' }).encode('Σ'), [6]);
  assert.deepEqual(tokenizer(INGEST, { type: 'Whitespace' }).encodeWords('ΟΣ')[0].word, 'οσ');
});

test('special tokens typed literally are matched before normalisation', () => {
  const t = tokenizer(INGEST, { type: 'Whitespace' });
  assert.deepEqual(t.encode('the<eos>cat <unk>'), [2, 1, 3, 0]);
  assert.deepEqual(t.encode('<EOS>'), [0, 0, 0]);                   // not the special token
});

test('lone surrogates become U+FFFD', () => {
  assert.equal(cleanText('a\ud800b\udfff'), 'a\ufffdb\ufffd');
  assert.deepEqual(tokenizer(INGEST, { type: 'Whitespace' }).encode('\ud800'), [0]);
});

test('number folding: a Replace regex and a Split pre-tokenizer', () => {
  const t = tokenizer(
    { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { Regex: '\\b\\d+(?:[.,:]\\d+)*\\b' }, content: ' <num> ' }, { type: 'Lowercase' }] },
    { type: 'Split', pattern: { Regex: '<num>|\\w+|[^\\w\\s]+' }, behavior: 'Removed', invert: true });
  assert.deepEqual(t.encode('the 1,000 cat v12'), [2, 7, 3, 0]);
});

test('Split behaviours', () => {
  const split = (behavior) => tokenizer(null, { type: 'Split', pattern: { String: ',' }, behavior, invert: false })
    .encodeWords('the,cat,,').map((w) => w.word);
  assert.deepEqual(split('Removed'), ['the', 'cat']);
  assert.deepEqual(split('Isolated'), ['the', ',', 'cat', ',', ',']);
  assert.deepEqual(split('MergedWithPrevious'), ['the,', 'cat,', ',']);
  assert.deepEqual(split('MergedWithNext'), ['the', ',cat', ',', ',']);
});

test('unsupported components fail with one clear line', () => {
  assert.throws(() => tokenizer({ type: 'BertNormalizer' }, null), (e) => e instanceof ArtifactError && /BertNormalizer/.test(e.message));
  assert.throws(() => tokenizer(null, { type: 'ByteLevel' }), /pre_tokenizer type "ByteLevel" is not supported/);
  assert.throws(() => new Tokenizer({ model: { type: 'BPE', vocab: {} } }), /model type "BPE"/);
  assert.throws(() => translateOniguruma('(?i)abc'), /inline option/);
  assert.throws(() => translateOniguruma('a++'), /possessive/);
  assert.throws(() => translateOniguruma('[[:alpha:]]'), /nested character class/);
});

test('Oniguruma translation keeps the line anchors and dot of Ruby syntax', () => {
  assert.equal(new RegExp(translateOniguruma('^a.$'), 'u').test('a\u2028'), true);   // . takes U+2028
  assert.equal(new RegExp(translateOniguruma('^x$'), 'u').test('a\nx\nb'), true);     // line anchors
});
