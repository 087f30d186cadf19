// The pocketlm page: score a sentence word by word, suggest words as they are typed (three chips
// above the text box; tap one to take it), rank candidates, generate as it streams; for a classify
// or tag model folder, its own tab instead: label bars, or the text with its entities highlighted.
// The model folder is ./model/ (or ?model=URL); ?precision=int8 and ?threads=N choose the graphs
// and the WebAssembly threads (more than 1 only when the page is cross-origin isolated).
import { Keyboard, Typing, detokenize, loadModel, oneLine } from 'pocketlm';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

function showError(error) {
  $('error').textContent = oneLine(error);
  $('error').hidden = false;
  $('status').textContent = 'The model could not be used.';
}

/** Colour of a probability: red (unlikely) through yellow to green (likely), on a log scale. */
function colour(logprob) {
  const t = Math.max(0, Math.min(1, 1 + logprob / 12));   // ln P of 0 -> 1, of -12 or less -> 0
  return `hsl(${Math.round(120 * t)}, 75%, 78%)`;
}

async function scoreSentence(lm) {
  const words = await lm.fullScores($('sentence').value);
  const out = $('words');
  out.replaceChildren(...words.map((w) => {
    const span = document.createElement('span');
    span.textContent = w.word;
    span.style.background = colour(w.logprob);
    span.title = `${w.token}: ln P = ${w.logprob.toFixed(3)} (P = ${Math.exp(w.logprob).toPrecision(3)})` +
      (w.oov ? ', not in the vocabulary' : '');
    span.dataset.logprob = String(w.logprob);
    if (w.oov) span.className = 'oov';
    return span;
  }));
  const total = words.reduce((s, w) => s + w.logprob, 0);
  $('total').textContent = `ln P(sentence) = ${total.toFixed(3)} nats over ${words.length} predicted tokens ` +
    `(perplexity ${Math.exp(-total / words.length).toFixed(1)})`;
  return total;
}

async function rankCandidates(lm) {
  const candidates = $('candidates').value.split('\n').map((s) => s.trim()).filter(Boolean);
  const ranked = await lm.rank(candidates);
  $('ranking').replaceChildren(...ranked.map((s) => {
    const li = document.createElement('li');
    const lp = document.createElement('span');
    lp.className = 'lp';
    lp.textContent = s.logprob.toFixed(3);
    li.append(s.sentence, lp);
    li.dataset.logprob = String(s.logprob);
    return li;
  }));
  return ranked;
}

async function generate(lm) {
  const out = $('generated');
  const prompt = $('prompt').value;
  const head = document.createElement('span');
  head.className = 'prompt';
  head.textContent = prompt;
  const body = document.createElement('span');
  body.id = 'generated-words';
  out.replaceChildren(head, ' ', body);
  const words = [];
  const options = {
    maxWords: Number($('max-words').value), temperature: Number($('temperature').value),
    topK: Number($('top-k').value), topP: Number($('top-p').value), seed: Number($('seed').value),
  };
  for await (const word of lm.stream(prompt, options)) {
    words.push(word);
    body.textContent = detokenize(words);
    await new Promise((resolve) => requestAnimationFrame(resolve));   // show it now
  }
  return words;
}

/**
 * The keyboard: a typing session follows the text box (letters typed or deleted at the end are
 * keystrokes; any other edit replays the text), and the chips show its three suggestions, or
 * its corrections when no word starts with the letters typed.
 */
async function keyboardBox(lm) {
  const typing = await Typing.create(new Keyboard(lm));
  const box = $('keyboard-text');
  let last = '';
  let queue = Promise.resolve();
  const chips = () => {
    let shown = typing.suggestions(3);
    const correcting = shown.length === 0 && typing.partial !== '';
    if (correcting) shown = typing.corrections(3);
    document.querySelectorAll('.chip').forEach((chip, i) => {
      chip.textContent = shown[i] ? shown[i].word : '';
      chip.dataset.word = shown[i] ? shown[i].word : '';
      chip.dataset.logprob = shown[i] ? String(shown[i].logprob) : '';
      chip.disabled = !shown[i];
      chip.classList.toggle('correction', correcting);
    });
    window.pocketlm.chips = shown.map((s) => s.word);
  };
  const follow = async () => {
    const value = box.value;
    if (value.startsWith(last)) {
      for (const ch of value.slice(last.length)) await typing.type(ch);
    } else if (last.startsWith(value) && [...last].length - [...value].length <= 1) {
      typing.backspace();
    } else {
      await typing.reset();
      for (const ch of value) await typing.type(ch);
    }
    last = value;
    chips();
  };
  const later = (action) => { queue = queue.then(action).catch(showError); return queue; };
  box.addEventListener('input', () => later(follow));
  document.querySelectorAll('.chip').forEach((chip) => chip.addEventListener('click', () => later(async () => {
    if (!chip.dataset.word) return;
    const cut = last.length - [...typing.partial].length;
    await typing.accept(chip.dataset.word);
    last = `${last.slice(0, Math.max(cut, 0))}${chip.dataset.word} `;
    box.value = last;
    chips();
    box.focus();
  })));
  window.pocketlm.keyboard = typing;
  window.pocketlm.keyboardIdle = () => queue;
  chips();
}

function guard(action) {
  return async (event) => {
    event.preventDefault();
    try {
      $('error').hidden = true;
      await action();
    } catch (error) {
      showError(error);
    }
  };
}

async function classifyText(model) {
  const [result] = await model.predict([$('classify-text').value], { topK: model.labels.length });
  $('label-bars').replaceChildren(...result.labels.map(({ label, probability }) => {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.textContent = label;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${(100 * probability).toFixed(1)}%`;
    const p = document.createElement('span');
    p.className = 'p';
    p.textContent = probability.toFixed(3);
    li.append(name, document.createElement('span'), p);
    li.children[1].append(bar);
    li.dataset.label = label;
    li.dataset.probability = String(probability);
    return li;
  }));
  return result;
}

/** A hue per entity type, stable across texts. */
function hue(type, types) {
  return Math.round((360 * types.indexOf(type)) / Math.max(1, types.length)) + 30;
}

async function tagText(model) {
  const text = $('tag-text').value;
  const result = await model.tag(text);
  const types = [...new Set(model.labels.filter((l) => l.startsWith('B-')).map((l) => l.slice(2)))];
  const parts = [];
  let at = 0;
  for (const e of result.entities) {
    parts.push(text.slice(at, e.start));
    const mark = document.createElement('mark');
    mark.textContent = e.text;
    mark.style.setProperty('--hue', hue(e.type, types));
    mark.dataset.type = e.type;
    const small = document.createElement('small');
    small.textContent = e.type;
    mark.append(small);
    parts.push(mark);
    at = e.end;
  }
  parts.push(text.slice(at));
  $('tagged').replaceChildren(...parts);
  $('entities').replaceChildren(...result.entities.map((e) => {
    const li = document.createElement('li');
    li.textContent = `${e.type}: ${e.text} (characters ${e.start}–${e.end}, pieces ${e.first}–${e.last})`;
    return li;
  }));
  return result;
}

/** The classify or tag tab: shown instead of the language model's sections. */
async function taskPage(model) {
  const task = model.task;
  $('lm-tabs').hidden = true;
  $(`${task}-tab`).hidden = false;
  const run = task === 'classify' ? () => classifyText(model) : () => tagText(model);
  $(`${task}-form`).addEventListener('submit', guard(run));
  let pending = null;
  $(`${task}-text`).addEventListener('input', () => {
    clearTimeout(pending);
    pending = setTimeout(() => run().catch(showError), 150);
  });
  $('model-info').textContent = `Model: ${task}, ${model.labels.length} labels, ${model.precision} graphs.`;
  await run();
  window.pocketlm.firstScoreMs = performance.now();
  for (const button of document.querySelectorAll('button')) button.disabled = false;
  $('status').textContent = task === 'classify' ? 'Ready: type a text to classify.' : 'Ready: type a text to tag.';
  return model;
}

async function main() {
  const lm = await loadModel(params.get('model') || 'model/', {
    precision: params.get('precision') || 'fp32', threads: Number(params.get('threads') || 1),
    wasmPaths: new URL('ort/', location.href).href,
  });
  window.pocketlm.lm = lm;
  if (lm.task === 'classify' || lm.task === 'tag') return taskPage(lm);
  const m = lm.manifest.model || {};
  $('model-info').textContent = `Model: ${m.cell || ''} ${m.layers || ''}×${m.hidden_size || ''}, ` +
    `${lm.vocabSize.toLocaleString()} words, ${lm.precision} graphs.`;
  $('score-form').addEventListener('submit', guard(() => scoreSentence(lm)));
  $('rank-form').addEventListener('submit', guard(() => rankCandidates(lm)));
  $('generate-form').addEventListener('submit', guard(() => generate(lm)));
  let pending = null;
  $('sentence').addEventListener('input', () => {
    clearTimeout(pending);
    pending = setTimeout(() => scoreSentence(lm).catch(showError), 150);
  });
  await scoreSentence(lm);
  await rankCandidates(lm);
  await keyboardBox(lm);
  window.pocketlm.firstScoreMs = performance.now();   // ms since navigation started
  for (const button of document.querySelectorAll('button')) button.disabled = false;
  $('status').textContent = 'Ready: type a sentence, rank candidates or generate.';
  return lm;
}

window.pocketlm = { ready: main().catch((error) => { showError(error); throw error; }) };
window.pocketlm.ready.catch(() => {});

if ('serviceWorker' in navigator && !params.has('no-offline')) {
  navigator.serviceWorker.register('sw.js').catch(() => {});
}
