// The typist of bench/keyboard_driver.py's savings(), for a JavaScript Typing (web/src/keyboard.js):
// at each letter of each word it reads suggestions(k) and taps the word as soon as it shows (the
// tap takes the space too), else types the next letter, or a space after the last one.
//
//   const typing = await Typing.create(keyboard, { learn: false });
//   const got = await typist(typing, ['and the lord said', ...], 3);
//   got: {keystrokes, taps, words, savings, suggestMs: [per suggestions(k) call],
//         stepMs: [per finished word: accept or space, the model's step]}
//
// bench/keyboard_web.py runs it in Chromium (served beside the page) and in Node (driver.js).

export async function typist(typing, sentences, k = 3) {
  let keystrokes = 0;
  let taps = 0;
  let words = 0;
  const suggestMs = [];
  const stepMs = [];
  for (const sentence of sentences) {
    await typing.reset();
    const targets = sentence.split(/\s+/u).map((w) => typing.keyboard.normalize(w)).filter(Boolean);
    for (const target of targets) {
      const letters = [...target];
      keystrokes += letters.length + 1;
      words += 1;
      for (let n = 0; n <= letters.length; n++) {
        let t0 = performance.now();
        const shown = typing.suggestions(k).map((s) => s.word);
        suggestMs.push(performance.now() - t0);
        if (shown.includes(target) || n === letters.length) {
          taps += n + 1;
          t0 = performance.now();
          if (shown.includes(target)) await typing.accept(target); else await typing.space();
          stepMs.push(performance.now() - t0);
          break;
        }
        await typing.type(letters[n]);
      }
    }
  }
  const savings = Math.round((1 - taps / Math.max(keystrokes, 1)) * 1e4) / 1e4;
  return { keystrokes, taps, words, savings, suggestMs, stepMs };
}
