"""runtime/model.py, the incremental and robust parts: the State API (begin, null_state, advance,
end, batched rows for beam search), score's bos/eos flags, n-best rescoring, batched and
streamed generation, arbitrary text (hypothesis), bad ids and use from several threads."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketlm.runtime import (EOS_ID, UNK_ID, Generation, InputError, LanguageModel, PocketLMError,
                              Rescored, State)
from pocketlm.runtime import generation as runtime_generation
from pocketlm.runtime import scoring as runtime_scoring

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

#: Words of the toy grammar mixed with unknown words, punctuation, odd characters.
WORDS = ["the", "cat", "sees", "ball", ".", "!", "a", "tree", "zebra", "Cat", "don't", "<eos>",
         "<unk>", "\ud800", "\x00", "\u00a8", "e\u0301", "😀", "\t", "\u2028", ""]
TEXT = st.one_of(st.text(max_size=60),
                 st.lists(st.sampled_from(WORDS), max_size=25).map(" ".join))


@pytest.fixture(scope="module")
def lm(toy_model: Path) -> LanguageModel:
    return LanguageModel(toy_model)


def _advance_all(lm: LanguageModel, sentence: str, bos: bool, eos: bool) -> float:
    state = lm.begin() if bos else lm.null_state()
    total = 0.0
    for token in lm.tokenize(sentence):
        logprob, state = lm.advance(state, token)
        total += logprob
    return total + (lm.end(state) if eos else 0.0)


# -- properties over arbitrary text -------------------------------------------------------------

@PROPERTY
@given(sentence=TEXT, bos=st.booleans(), eos=st.booleans())
def test_score_equals_advance_along_sentence(lm: LanguageModel, sentence: str, bos: bool,
                                             eos: bool) -> None:
    """For any string: score is finite, equals the sum of full_scores and the sum of advance
    along its tokens plus end (within 1e-4), whatever bos and eos."""
    value = lm.score(sentence, bos=bos, eos=eos)
    assert math.isfinite(value) and value <= 1e-6
    assert value == pytest.approx(_advance_all(lm, sentence, bos, eos), abs=1e-4)
    full = lm.full_scores(sentence, bos=bos, eos=eos)
    assert all(math.isfinite(w.logprob) for w in full)
    assert value == pytest.approx(sum(w.logprob for w in full), abs=1e-4)
    assert len(full) == len(lm.tokenize(sentence)) + (1 if eos else 0)


@PROPERTY
@given(words=st.lists(st.sampled_from(WORDS[:12]), max_size=12))
def test_advance_by_word_strings(lm: LanguageModel, words: list[str]) -> None:
    """Advancing word strings (a string of several tokens feeds them all) gives the score of
    the sentence they make."""
    state = lm.begin()
    total = 0.0
    for word in words:
        logprob, state = lm.advance(state, word)
        total += logprob
    assert total + lm.end(state) == pytest.approx(lm.score(" ".join(words)), abs=1e-4)


@PROPERTY
@given(hypotheses=st.lists(TEXT, max_size=6), weight=st.floats(-3, 3),
       penalty=st.floats(-2, 2), data=st.data())
def test_rescore_properties(lm: LanguageModel, hypotheses: list[str], weight: float,
                            penalty: float, data: st.DataObject) -> None:
    """rescore keeps every hypothesis once, sorts by base + weight * LM + penalty * words with
    finite values, and its LM log-probability is score's."""
    base = data.draw(st.lists(st.floats(-50, 50), min_size=len(hypotheses),
                              max_size=len(hypotheses)))
    out = lm.rescore(hypotheses, base, weight=weight, word_penalty=penalty)
    assert sorted(r.index for r in out) == list(range(len(hypotheses)))
    assert [r.score for r in out] == sorted((r.score for r in out), reverse=True)
    for r in out:
        assert r.sentence == hypotheses[r.index] and r.base_score == base[r.index]
        assert all(math.isfinite(v) for v in (r.score, r.lm_logprob))
        assert r.lm_logprob == pytest.approx(lm.score(r.sentence), abs=1e-4)
        assert r.score == pytest.approx(r.base_score + weight * r.lm_logprob + penalty * r.words)


def test_hard_strings(lm: LanguageModel) -> None:
    """Lone surrogates, control characters, a long unknown word and 100,000 words all score
    to finite numbers (the last through the step graph when it exceeds the score budget)."""
    for text in ["\ud800", "a\udfffb", "\x00\x01\x1c\x7f", "x" * 10_000, "\n\r\t",
                 "<eos> <eos>", "\ud83d\ude00 smile"]:
        assert math.isfinite(lm.score(text)), repr(text)
        assert math.isfinite(lm.score(text, bos=False, eos=False))
    long = " ".join(["the cat sees the ball ."] * 16_667)[: 100_000 * 4]
    assert len(long.split()) >= 100_000
    value = lm.score(long)
    assert math.isfinite(value) and value < 0
    assert lm.score_batch([long, "the cat"])[0] == pytest.approx(value, rel=1e-6)


def test_long_sentence_through_step_graph(lm: LanguageModel,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Sentences too long for one score-graph run are scored with the step graph, to the same
    values; batches are cut to the budget."""
    sentences = ["the cat sees the ball .", "a bird " * 40, "", "the zebra"]
    expected = lm.score_batch(sentences)
    monkeypatch.setattr(runtime_scoring, "SCORE_BUDGET", lm.vocab_size * 12)
    np.testing.assert_allclose(lm.score_batch(sentences), expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(lm.score_batch(sentences, batch_size=1), expected, rtol=0,
                               atol=1e-4)


def test_non_string_is_type_error(lm: LanguageModel) -> None:
    """A non-string sentence is a TypeError with a one-line message."""
    for bad in (None, 3, b"bytes"):
        with pytest.raises(TypeError, match="expected a str"):
            lm.score(bad)  # type: ignore[arg-type]
    assert 3 not in lm


# -- score flags --------------------------------------------------------------------------------

def test_bos_eos_flags(lm: LanguageModel) -> None:
    """bos=False makes the first word context (scores 0); eos=False drops the final <eos>; the
    predicted-token counts follow."""
    s = "the cat sees the ball ."
    full = lm.full_scores(s)
    assert lm.score(s, eos=False) == pytest.approx(sum(w.logprob for w in full[:-1]), abs=1e-5)
    no_bos = lm.full_scores(s, bos=False)
    assert no_bos[0].logprob == 0.0 and no_bos[0].word == "the"
    assert lm.score(s, bos=False) != pytest.approx(lm.score(s))
    counts = {(b, e): lm.analyze([s], bos=b, eos=e)[0].tokens
              for b in (True, False) for e in (True, False)}
    assert counts == {(True, True): 7, (True, False): 6, (False, True): 6, (False, False): 5}
    assert lm.score("", bos=False) == 0.0 and lm.score("", eos=False) == 0.0
    assert lm.analyze([""], bos=False)[0].tokens == 0
    assert math.isnan(lm.analyze([""], bos=False)[0].perplexity)


# -- the State API ------------------------------------------------------------------------------

def test_begin_matches_step(lm: LanguageModel) -> None:
    """begin() is the zero state with <eos> fed; null_state() predicts nothing (all zeros)."""
    logprobs, state = lm.step([EOS_ID], lm.initial_state(1))
    begun = lm.begin()
    assert len(begun) == 1 and isinstance(begun, State)
    np.testing.assert_allclose(begun.logprobs, logprobs, atol=1e-6)
    for name in lm.state_names:
        np.testing.assert_allclose(begun.arrays[name], state[name], atol=1e-6)
    null = lm.null_state(3)
    assert len(null) == 3 and not null.logprobs.any()
    assert lm.end(lm.begin()) == pytest.approx(lm.score(""), abs=1e-5)
    assert "rows=1" in repr(begun)


def test_advance_words_and_ids(lm: LanguageModel) -> None:
    """advance takes a word or an id; an empty word changes nothing; a multi-token word feeds
    all its tokens; states are not modified by advancing them."""
    state = lm.begin()
    before = state.logprobs.copy()
    by_word, s1 = lm.advance(state, "Cat")
    by_id, s2 = lm.advance(state, lm.tokenize("cat")[0])
    assert by_word == pytest.approx(by_id) and by_word == float(before[0, lm.tokenize("cat")[0]])
    np.testing.assert_array_equal(state.logprobs, before)
    np.testing.assert_allclose(s1.logprobs, s2.logprobs)
    nothing, same = lm.advance(state, "   ")
    assert nothing == 0.0 and same is state
    two, _ = lm.advance(state, "the cat")
    first, mid = lm.advance(state, "the")
    second, _ = lm.advance(mid, "cat")
    assert two == pytest.approx(first + second, abs=1e-6)


def test_advance_batch_matches_single(lm: LanguageModel) -> None:
    """advance_batch over several rows gives what advance gives row by row."""
    sentences = [["the", "cat", "sees"], ["a", "bird", "likes"], ["my", "zebra", "."]]
    state = lm.begin(3)
    batched = np.zeros(3)
    for t in range(3):
        logps, state = lm.advance_batch(state, [s[t] for s in sentences])
        assert logps.shape == (3,) and logps.dtype == np.float64
        batched += logps
    batched += lm.end_batch(state)
    single = [lm.score(" ".join(s)) for s in sentences]
    np.testing.assert_allclose(batched, single, atol=1e-4)
    ids = np.array([lm.tokenize(s[0])[0] for s in sentences])
    logps_from_array, _ = lm.advance_batch(lm.begin(3), ids)
    logps_from_words, _ = lm.advance_batch(lm.begin(3), [s[0] for s in sentences])
    np.testing.assert_allclose(logps_from_array, logps_from_words)


def test_select_repeat_reorder(lm: LanguageModel) -> None:
    """select picks, repeats and reorders rows; concat stacks states; both keep each row's
    history, so rows advance as if alone."""
    _, a = lm.advance(lm.begin(), "the")
    _, b = lm.advance(lm.begin(), "a")
    both = State.concat([a, b])
    assert len(both) == 2
    picked = both.select([1, 1, 0])
    assert len(picked) == 3 and len(both[0]) == 1
    logps, _ = lm.advance_batch(picked, ["bird", "child", "cat"])
    assert logps[0] == pytest.approx(lm.advance(b, "bird")[0], abs=1e-5)
    assert logps[1] == pytest.approx(lm.advance(b, "child")[0], abs=1e-5)
    assert logps[2] == pytest.approx(lm.advance(a, "cat")[0], abs=1e-5)
    with pytest.raises(InputError):
        both.select([2])
    with pytest.raises(InputError):
        both.select([[0]])
    with pytest.raises(InputError):
        State.concat([])
    rows = list(picked)
    assert [len(r) for r in rows] == [1, 1, 1]
    np.testing.assert_array_equal(rows[2].logprobs, a.logprobs)


def test_beam_search_by_hand(lm: LanguageModel) -> None:
    """A small beam search with advance_batch and select finds a hypothesis whose beam score
    is its exact sentence score (prefix, without <eos>)."""
    beam, scores, texts = lm.begin(), np.zeros(1), [[]]
    for _ in range(4):
        logprobs = scores[:, None] + beam.logprobs.astype(np.float64)   # [rows, vocab]
        logprobs[:, [UNK_ID, EOS_ID]] = -np.inf
        flat = np.argsort(-logprobs, axis=None)[:3]
        rows, tokens = np.unravel_index(flat, logprobs.shape)
        step_logps, beam = lm.advance_batch(beam.select(rows), tokens)
        scores = scores[rows] + step_logps
        texts = [texts[r] + [lm.tokenizer.id_to_token(int(t))] for r, t in zip(rows, tokens)]
    best = int(np.argmax(scores))
    assert scores[best] == pytest.approx(lm.score(" ".join(texts[best]), eos=False), abs=1e-4)


@pytest.mark.parametrize("bad", [-1, 10**9, 28.0, True, None])
def test_bad_ids_are_one_line_errors(lm: LanguageModel, bad: object) -> None:
    """Out-of-range or non-integer ids in step, advance and advance_batch are InputError (a
    ValueError) with a one-line message."""
    calls = [lambda: lm.advance(lm.begin(), bad),
             lambda: lm.advance_batch(lm.begin(2), [bad, bad])]
    if isinstance(bad, int) and not isinstance(bad, bool):
        calls.append(lambda: lm.step([bad], lm.initial_state(1)))
    for call in calls:
        with pytest.raises(ValueError) as excinfo:
            call()
        assert isinstance(excinfo.value, PocketLMError) and "\n" not in str(excinfo.value)


def test_state_misuse(lm: LanguageModel) -> None:
    """Wrong state shapes, row counts and multi-token words in batches are InputErrors."""
    with pytest.raises(InputError, match="one-row"):
        lm.advance(lm.begin(2), "the")
    with pytest.raises(InputError, match="one-row"):
        lm.end(lm.begin(2))
    with pytest.raises(InputError, match="2 tokens"):
        lm.advance_batch(lm.begin(2), ["the", "the cat"])
    with pytest.raises(InputError, match="rows"):
        lm.advance_batch(lm.begin(2), ["the"])
    with pytest.raises(InputError, match="shape"):
        lm.step([1, 1], lm.initial_state(1))
    with pytest.raises(InputError, match="keys"):
        lm.step([1], {"x": np.zeros(1)})
    with pytest.raises(InputError):
        lm.null_state(0)


# -- rescoring ----------------------------------------------------------------------------------

def test_rescore_ranks_and_weights(lm: LanguageModel) -> None:
    """The LM weight can overturn the recogniser's order; weight 0 keeps it; the word penalty
    adds per word; ties keep input order."""
    hyps = ["the cat sees the ball .", "the cat sea the ball ."]
    base = [-10.0, -9.5]             # the recogniser prefers the wrong one
    assert [r.index for r in lm.rescore(hyps, base, weight=0.0)] == [1, 0]
    out = lm.rescore(hyps, base, weight=1.0)
    assert [r.sentence for r in out] == [hyps[0], hyps[1]]
    assert isinstance(out[0], Rescored) and out[1].oov == 1 and out[0].words == 6
    penalised = lm.rescore(hyps, base, weight=1.0, word_penalty=-1.0)
    assert penalised[0].score == pytest.approx(out[0].score - 6)
    assert [r.index for r in lm.rescore(["a", "a"], [0.0, 0.0])] == [0, 1]
    assert lm.rescore([], []) == []
    plain = lm.rescore(hyps)
    assert [r.base_score for r in plain] == [0.0, 0.0]


def test_rescore_batch_equals_single(lm: LanguageModel) -> None:
    """rescore_batch gives each list what rescore gives it alone."""
    lists = [["the cat", "cat the"], ["a bird likes a tree !"], ["x", "y", "the dog"]]
    bases = [[-1.0, -2.0], [0.0], [1.0, 2.0, 3.0]]
    batched = lm.rescore_batch(lists, bases, weight=0.7, word_penalty=0.2)
    for hyps, base, got in zip(lists, bases, batched):
        alone = lm.rescore(hyps, base, weight=0.7, word_penalty=0.2)
        assert [r.index for r in got] == [r.index for r in alone]
        np.testing.assert_allclose([r.score for r in got], [r.score for r in alone], atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(hypotheses=["a"], base_scores=[1.0, 2.0]),
                                    dict(hypotheses=["a"], base_scores=[float("nan")]),
                                    dict(hypotheses=["a"], base_scores=["1"]),
                                    dict(hypotheses="a b", base_scores=[0.0, 0.0, 0.0]),
                                    dict(hypotheses=["a"], weight=float("inf")),
                                    dict(hypotheses=["a"], word_penalty=float("nan"))])
def test_rescore_bad_arguments(lm: LanguageModel, kwargs: dict) -> None:
    """Mismatched lengths, non-finite or non-numeric scores and weights are InputErrors."""
    with pytest.raises(InputError):
        lm.rescore(**kwargs)


# -- generation ---------------------------------------------------------------------------------

def test_stream_matches_generate(lm: LanguageModel) -> None:
    """stream yields the words generate returns for the same seed, with log-probabilities on
    request, and records the finish reason and state."""
    for seed in range(4):
        stream = lm.stream("the cat", seed=seed, logprobs=True)
        pairs = list(stream)
        assert stream.text == lm.generate("the cat", seed=seed)
        assert [w for w, _ in pairs] == stream.words
        sample = lm.samples("the cat", seed=seed)[0]
        assert tuple(stream.words) == sample.words
        np.testing.assert_allclose([lp for _, lp in pairs], sample.logprobs, atol=1e-6)
        assert stream.finish == sample.finish
        assert list(stream) == []
    words = list(lm.stream(seed=0))
    assert all(isinstance(w, str) for w in words)


def test_generation_logprobs_are_model_logprobs(lm: LanguageModel) -> None:
    """The per-word log-probabilities are the model's (untempered) ones: their sum is the
    prefix score of prompt + words minus the prompt's."""
    g = lm.samples("a child", seed=2, temperature=1.5)[0]
    prompt = lm.score("a child", eos=False)
    whole = lm.score("a child " + " ".join(g.words), eos=False)
    assert sum(g.logprobs) == pytest.approx(whole - prompt, abs=1e-4)


def test_num_samples_batched(lm: LanguageModel) -> None:
    """num_samples samples are returned together; seeded runs repeat; samples differ; one
    sample equals generate's; greedy samples are all the greedy text."""
    many = lm.samples(seed=5, num_samples=6)
    assert len(many) == 6 and all(isinstance(g, Generation) for g in many)
    assert [g.text for g in many] == lm.generate(seed=5, num_samples=6)
    assert len({g.text for g in many}) > 1
    assert lm.samples(seed=5, num_samples=1)[0].text == lm.generate(seed=5)
    greedy = lm.generate(temperature=0)
    assert lm.generate(temperature=0, num_samples=3) == [greedy] * 3
    for g in many:
        assert g.finish in ("eos", "max_words") and len(g.words) == len(g.logprobs)
    with pytest.raises(InputError):
        lm.samples(num_samples=0)


def test_stop_words_and_max_words(lm: LanguageModel) -> None:
    """A stop word ends a sample and is kept; max_words caps it; finish says which."""
    for g in lm.samples(seed=1, num_samples=8, stop=["the", "a"]):
        assert g.finish in ("stop", "eos", "max_words")
        if g.finish == "stop":
            assert g.words[-1] in ("the", "a") and not set(g.words[:-1]) & {"the", "a"}
    capped = lm.samples(seed=1, num_samples=4, max_words=2, temperature=3.0)
    assert all(len(g.words) <= 2 for g in capped)
    assert any(g.finish == "max_words" for g in capped)
    empty = lm.samples(max_words=0)[0]
    assert empty.words == () and empty.finish == "max_words"
    with pytest.raises(InputError, match="tokens"):
        lm.samples(stop=["the cat"])


def test_continue_from_state(lm: LanguageModel) -> None:
    """The returned state continues the text: generating from it equals generating from the
    prompt plus the words produced so far."""
    first = lm.samples("the old man", temperature=0, max_words=2)[0]
    assert first.finish == "max_words"
    more = lm.generate(temperature=0, state=first.state)
    assert more == lm.generate("the old man " + " ".join(first.words), temperature=0)
    stream = lm.stream("the old man", temperature=0, max_words=2)
    list(stream)
    np.testing.assert_allclose(stream.state.logprobs, first.state.logprobs, atol=1e-6)
    _, state = lm.advance(lm.begin(), "my")
    assert lm.generate(temperature=0, state=state) == lm.generate("my", temperature=0)


# -- threads ------------------------------------------------------------------------------------

def test_shared_between_threads(lm: LanguageModel) -> None:
    """One LanguageModel used from several threads at once gives the same results as alone."""
    sentences = ["the cat sees the ball .", "a child likes a tree !", "the zebra", ""]
    expected = lm.score_batch(sentences)
    expected_gen = lm.generate(seed=3, num_samples=2)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(15):
                np.testing.assert_allclose(lm.score_batch(sentences), expected, atol=1e-5)
                assert lm.generate(seed=3, num_samples=2) == expected_gen
                state = lm.begin()
                for word in ["the", "cat"]:
                    _, state = lm.advance(state, word)
                assert math.isfinite(lm.end(state))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@settings(max_examples=80, deadline=None)
@given(probs=st.lists(st.lists(st.sampled_from([0.0, 0.0, 1e-30, 1e-6, 0.3, 1.0, 7.0]),
                               min_size=1, max_size=300).filter(lambda row: any(row)),
                      min_size=1, max_size=4),
       draws=st.lists(st.floats(1e-12, 1.0), min_size=4, max_size=4))
def test_inverse_cdf_picks_only_possible_tokens(probs: list[list[float]],
                                                draws: list[float]) -> None:
    """The sampler's inverse CDF never returns a token of probability 0, for any row lengths
    (across block boundaries) and any draw in (0, 1]."""
    width = max(len(row) for row in probs)
    matrix = np.zeros((len(probs), width))
    for r, row in enumerate(probs):
        matrix[r, :len(row)] = row
    picked = runtime_generation._inverse_cdf(matrix, np.asarray(draws[:len(probs)]))
    assert all(matrix[r, i] > 0 for r, i in enumerate(picked))
    ones = runtime_generation._inverse_cdf(matrix, np.ones(len(probs)))
    assert all(matrix[r, i] > 0 for r, i in enumerate(ones))


def test_sampling_follows_the_distribution(lm: LanguageModel) -> None:
    """Sampled first words follow the model's distribution (a loose frequency check)."""
    state = lm.begin()
    probs = np.exp(state.logprobs[0].astype(np.float64))
    probs[UNK_ID] = 0
    probs /= probs.sum()
    rng = np.random.default_rng(0)
    rows = state.select(np.zeros(4000, dtype=np.int64))
    picked = runtime_generation.pick_tokens(rows.logprobs, rng, 1.0, 0, 1.0, lm.unk_id)
    freq = np.bincount(picked, minlength=lm.vocab_size) / len(picked)
    assert np.abs(freq - probs).max() < 0.03
