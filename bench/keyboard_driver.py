"""The half of bench/keyboard.py that runs in kebbie's environment (see its docstring).

Every corrector is a :class:`~pocketlm.runtime.keyboard.Keyboard` over a different next-word
source; a :class:`Contexts` cache advances each source incrementally as kebbie's context grows
word by word. Correctors are rebuilt from their name in each kebbie worker (they pickle as
their recipe, not their onnxruntime sessions).
"""

from __future__ import annotations

import math
import re
import resource
import time
import tracemalloc
from typing import Any

import numpy as np
from common import emit, percentile

from pocketlm.runtime.keyboard import Keyboard, LMSource
from pocketlm.runtime.typing_session import CACHE_WEIGHT, CACHE_WINDOW, Typing


class KenLMSource:
    """A kenlm model over pocketlm's vocabulary: state = kenlm.State; the distribution is
    every vocabulary entry's BaseScore, renormalised over the vocabulary."""

    def __init__(self, arpa: str, lm_source: LMSource) -> None:
        import kenlm

        self.kenlm = kenlm
        self.model = kenlm.Model(arpa)
        self.vocabulary = lm_source.vocabulary
        self.unk_id = lm_source.unk_id
        self.normalize = lm_source.normalize
        self.tokenize = lm_source.tokenize
        self._names = ["</s>" if w == "<eos>" else w for w in self.vocabulary]

    def begin(self) -> Any:
        state = self.kenlm.State()
        self.model.BeginSentenceWrite(state)
        return state

    def advance(self, state: Any, token: int) -> Any:
        out = self.kenlm.State()
        self.model.BaseScore(state, self._names[token], out)
        return out

    def logprobs(self, state: Any) -> np.ndarray:
        out, score = self.kenlm.State(), self.model.BaseScore
        lp = np.fromiter((score(state, w, out) for w in self._names), dtype=np.float64,
                         count=len(self._names)) * math.log(10)
        return lp - np.logaddexp.reduce(lp)


class UnigramSource:
    """Train-split token frequencies, whatever the context."""

    def __init__(self, counts: dict[str, int], lm_source: LMSource) -> None:
        self.vocabulary = lm_source.vocabulary
        self.unk_id = lm_source.unk_id
        self.normalize = lm_source.normalize
        self.tokenize = lm_source.tokenize
        c = np.asarray([counts.get(w, 0) for w in self.vocabulary], dtype=np.float64) + 0.5
        self._lp = np.log(c / c.sum())

    def begin(self) -> Any:
        return None

    def advance(self, state: Any, token: int) -> Any:
        return None

    def logprobs(self, state: Any) -> np.ndarray:
        return self._lp


def make_keyboard(name: str, job: dict[str, Any]) -> Keyboard:
    from pocketlm.runtime import LanguageModel

    precision = job["precisions"].get(name, "fp32")
    lm_source = LMSource(LanguageModel(job["model"], precision=precision, threads=1,
                                       verify=False))
    infer = job.get("infer_punctuation", True)
    if name.startswith("pocketlm"):
        return Keyboard(lm_source, infer_punctuation=infer)
    if name == "kn3":
        return Keyboard(KenLMSource(job["arpa"], lm_source), infer_punctuation=infer)
    if name == "unigram":
        return Keyboard(UnigramSource(job["unigram"], lm_source), infer_punctuation=infer)
    raise SystemExit(f"unknown corrector {name!r}: pocketlm-fp32, pocketlm-int8, kn3, unigram")


class Contexts:
    """The distribution the keyboard ranks with after a context string (``Keyboard.context``'s:
    the runtime's contexts, left-out punctuation inferred unless the keyboard was built
    without), advancing from the last context when the new one extends it (kebbie's contexts
    grow a word at a time)."""

    def __init__(self, keyboard: Keyboard) -> None:
        self.keyboard = keyboard
        self.source = keyboard.source
        self.tokens: list[int] = []
        self.context = keyboard.inference.begin()

    def logprobs(self, context: str) -> np.ndarray:
        tokens = self.source.tokenize(context)
        if tokens[:len(self.tokens)] != self.tokens:
            self.tokens, self.context = [], self.keyboard.inference.begin()
        for t in tokens[len(self.tokens):]:
            self.context = self.keyboard.inference.advance(self.context, t)
        self.tokens = tokens
        return self.context.ranked


def _profiled(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    finally:
        tracemalloc.stop()


def kebbie_corrector(name: str, job: dict[str, Any]) -> Any:
    from kebbie import Corrector

    class Pocket(Corrector):  # type: ignore[misc]
        def __init__(self) -> None:
            self._contexts: Contexts | None = None

        def __reduce__(self) -> Any:
            return (kebbie_corrector, (name, job))

        @property
        def contexts(self) -> Contexts:
            if self._contexts is None:
                self._contexts = Contexts(make_keyboard(name, job))
            return self._contexts

        # kebbie 0.5.1's profile_fn starts tracemalloc and never stops it, so every later
        # allocation in the process is traced (kebbie's own noise model included) and a run
        # takes ~5x longer. Same figures per call; tracing stops when the call returns.
        def profiled_auto_correct(self, *args: Any, **kwargs: Any) -> Any:
            return _profiled(super().profiled_auto_correct, *args, **kwargs)

        def profiled_auto_complete(self, *args: Any, **kwargs: Any) -> Any:
            return _profiled(super().profiled_auto_complete, *args, **kwargs)

        def profiled_predict_next_word(self, *args: Any, **kwargs: Any) -> Any:
            return _profiled(super().profiled_predict_next_word, *args, **kwargs)

        def profiled_resolve_swipe(self, *args: Any, **kwargs: Any) -> Any:
            return _profiled(super().profiled_resolve_swipe, *args, **kwargs)

        def predict_next_word(self, context: str) -> list[str]:
            c = self.contexts
            return [s.word for s in c.keyboard.complete(c.logprobs(context), "", 3)]

        def auto_complete(self, context: str, keystrokes: Any, partial_word: str) -> list[str]:
            c = self.contexts
            return [s.word for s in c.keyboard.complete(c.logprobs(context), partial_word, 3)]

        def auto_correct(self, context: str, keystrokes: Any, word: str) -> list[str]:
            c = self.contexts
            return [s.word for s in c.keyboard.corrections(c.logprobs(context), word, 3)]

    return Pocket()


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (ru_maxrss would keep the peak of the
    orchestrator this process was forked from, as Linux carries it across exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def savings(typing: Typing, sentences: list[str], k: int = 3,
            timings: list[float] | None = None,
            steps: list[float] | None = None) -> dict[str, Any]:
    """A typist who taps a correct top-k suggestion as soon as it shows (the tap includes the
    space), against typing every letter and space. ``timings`` gets the seconds of each
    ``suggestions(k)``, ``steps`` those of each finished word (accept or space: the model's
    step); web/tools/typist.js is the same typist in JavaScript."""
    source = typing.source
    full = taps = words = 0
    for sentence in sentences:
        typing.reset()
        targets = [w for w in (source.normalize(t) for t in sentence.split()) if w]
        for target in targets:
            full += len(target) + 1
            words += 1
            for n in range(len(target) + 1):
                t0 = time.perf_counter()
                shown = [s.word for s in typing.suggestions(k)]
                if timings is not None:
                    timings.append(time.perf_counter() - t0)
                if target in shown or n == len(target):
                    taps += n + 1
                    t0 = time.perf_counter()
                    if target in shown:
                        typing.accept(target)
                    else:
                        typing.space()
                    if steps is not None:
                        steps.append(time.perf_counter() - t0)
                    break
                typing.type(target[n])
    return {"keystrokes": full, "taps": taps, "words": words,
            "savings": round(1 - taps / max(full, 1), 4)}


def books_savings(kb: Keyboard, books: list[list[Any]], timings: list[float] | None = None,
                  **options: Any) -> dict[str, Any]:
    """Each book's verses typed as one user's text: one :class:`Typing` per book (``options``
    go to it), so the cache model starts empty at each book and is kept across its verses."""
    per_book = [savings(Typing(kb, **options), [typist_words(v) for v in verses],
                        timings=timings) for _, verses in books]
    keystrokes = sum(r["keystrokes"] for r in per_book)
    taps = sum(r["taps"] for r in per_book)
    return {"keystrokes": keystrokes, "taps": taps, "books": per_book,
            "savings": round(1 - taps / max(keystrokes, 1), 4)}


def compared(learned: dict[str, Any], plain: dict[str, Any], names: list[str],
             show: int = 5) -> dict[str, Any]:
    """Savings with the cache model against without, in all, and the ``show`` books it helps
    most and least (savings points per book)."""
    gains = sorted(((round(a["savings"] - b["savings"], 4), book) for book, a, b in
                    zip(names, learned["books"], plain["books"])), key=lambda g: (-g[0], g[1]))
    return {"keystrokes": learned["keystrokes"], "taps_learning": learned["taps"],
            "taps_plain": plain["taps"], "savings_learning": learned["savings"],
            "savings_plain": plain["savings"],
            "gain": round((plain["taps"] - learned["taps"]) / max(learned["keystrokes"], 1), 4),
            "books_better": sum(g > 0 for g, _ in gains),
            "books_worse": sum(g < 0 for g, _ in gains),
            "best_books": [[book, g] for g, book in gains[:show]],
            "worst_books": [[book, g] for g, book in gains[::-1][:show]]}


def typist_words(text: str) -> str:
    """A verse as the words a keyboard user types: its runs of letters, lower-cased."""
    return " ".join(re.findall(r"[^\W\d_]+", text.lower()))


def drive(job: dict[str, Any]) -> None:
    for name in job["correctors"]:
        kb = make_keyboard(name, job)
        sentences = [typist_words(s) for s in job["sentences"]]
        infer = kb.inference.infer
        t0 = time.perf_counter()
        timings: list[float] = []
        finished: list[float] = []
        result = savings(Typing(kb, learn=False), sentences, timings=timings, steps=finished)
        emit("savings", corrector=name, infer_punctuation=infer, sentences=len(sentences),
             seconds=round(time.perf_counter() - t0, 1), **result)
        steps: list[float] = []
        state = kb.source.begin()
        for t in kb.source.tokenize(" ".join(sentences[:50]))[:2000]:
            t0 = time.perf_counter()
            state = kb.source.advance(state, t)
            kb.source.logprobs(state)
            steps.append(time.perf_counter() - t0)
        emit("latency", corrector=name, infer_punctuation=infer, keystrokes=len(timings),
             suggest_p50_us=round(percentile(timings, 50) * 1e6, 1),
             suggest_p95_us=round(percentile(timings, 95) * 1e6, 1),
             word_step_p50_us=round(percentile(steps, 50) * 1e6, 1),
             word_step_p95_us=round(percentile(steps, 95) * 1e6, 1),
             finish_word_p50_us=round(percentile(finished, 50) * 1e6, 1),
             finish_word_p95_us=round(percentile(finished, 95) * 1e6, 1),
             peak_rss_mb=peak_rss_mb())
        user = job["user_books"]
        if not user:
            continue
        plain = books_savings(kb, user["valid"], learn=False) if job["grid"] else None
        for weight, window in job["grid"]:
            assert plain is not None
            learned = books_savings(kb, user["valid"], cache_weight=weight, cache_window=window)
            emit("cache_grid", corrector=name, split="valid", cache_weight=weight,
                 cache_window=window, **compared(learned, plain, [b for b, _ in user["valid"]]))
        timed: dict[str, list[float]] = {"learning": [], "plain": []}
        learned = books_savings(kb, user["test"], timings=timed["learning"])
        plain = books_savings(kb, user["test"], learn=False, timings=timed["plain"])
        for (book, verses), a, b in zip(user["test"], learned["books"], plain["books"]):
            emit("user_book", corrector=name, split="test", book=book, verses=len(verses),
                 keystrokes=a["keystrokes"], savings_learning=a["savings"],
                 savings_plain=b["savings"], gain=round(a["savings"] - b["savings"], 4))
        emit("user_words", corrector=name, split="test", books=len(user["test"]),
             verses=sum(len(v) for _, v in user["test"]), cache_weight=CACHE_WEIGHT,
             cache_window=CACHE_WINDOW, **compared(learned, plain, [b for b, _ in user["test"]]),
             **{f"suggest_{kind}_p{q}_us": round(percentile(t, q) * 1e6, 1)
                for kind, t in timed.items() for q in (50, 95)})
    for name in job["correctors"] if job["kebbie"] else []:
        from kebbie import evaluate

        t0 = time.perf_counter()
        results = evaluate(kebbie_corrector(name, job), dataset={"kjv": job["sentences"]},
                           n_proc=1, seed=job["seed"])
        results.pop("most_common_mistakes", None)
        emit("kebbie", corrector=name, infer_punctuation=job.get("infer_punctuation", True),
             sentences=len(job["sentences"]),
             seconds=round(time.perf_counter() - t0, 1), results=results)
