"""The tiny KJV model (the real default path, trained briefly) has learned English word order:
it prefers held-out verses to the same words shuffled."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from pocketlm.pipeline.ingest import load_split
from pocketlm.runtime import EOS_ID, LanguageModel
from pocketlm.runtime.artifact import read_manifest

N_VERSES = 30


@pytest.fixture(scope="module")
def lm(kjv_model: Path) -> LanguageModel:
    return LanguageModel(kjv_model)


@pytest.fixture(scope="module")
def test_verses(kjv_data: Path, lm: LanguageModel) -> list[str]:
    """~30 verses of the held-out test split, decoded from the data folder's token ids and
    chosen with a fixed seed (verses of at least 6 words, so a shuffle changes the order)."""
    ids = np.asarray(load_split(kjv_data, "test"))
    ends = np.flatnonzero(ids == EOS_ID)
    starts = np.concatenate([[0], ends[:-1] + 1])
    verses = [[lm.tokenizer.id_to_token(int(i)) for i in ids[a:b]]
              for a, b in zip(starts, ends)]
    verses = [v for v in verses if len(v) >= 6]
    assert len(verses) > 1000
    chosen = random.Random(20).sample(verses, N_VERSES)
    return [" ".join(v) for v in chosen]


def _shuffled(sentence: str, rng: random.Random) -> str:
    words = sentence.split()
    while True:
        out = words[:]
        rng.shuffle(out)
        if out != words:
            return " ".join(out)


def test_prefers_real_verses_to_shuffled(lm: LanguageModel, test_verses: list[str]) -> None:
    """Each held-out verse outscores the same words in a seeded random order for at least 90%
    of the verses, and in total."""
    rng = random.Random(0)
    shuffled = [_shuffled(v, rng) for v in test_verses]
    real, fake = lm.score_batch(test_verses), lm.score_batch(shuffled)
    wins = sum(r > f for r, f in zip(real, fake))
    assert wins >= 0.9 * N_VERSES, (wins, list(zip(test_verses, real, fake)))
    assert sum(real) > sum(fake)
    # same tokens, so the same number of predictions: the preference is about order only
    assert [s.tokens for s in lm.analyze(test_verses)] == [s.tokens for s in lm.analyze(shuffled)]


def test_held_out_verse_example(lm: LanguageModel) -> None:
    """A familiar word order outranks its reversal."""
    ranked = lm.rank(["light be there let , said god and", "and god said , let there be light"])
    assert ranked[0].sentence == "and god said , let there be light"


def test_validation_perplexity_recorded(kjv_model: Path, lm: LanguageModel) -> None:
    """The model manifest records validation and test perplexities far below the vocabulary
    size (a uniform guess would score the vocabulary size)."""
    metrics = read_manifest(kjv_model, "model")["metrics"]
    assert lm.vocab_size > 5000
    assert 1 < metrics["valid_ppl"] < 400
    assert 1 < metrics["test_ppl"] < 400


def test_int8_close_on_kjv(kjv_model: Path, lm: LanguageModel, test_verses: list[str]) -> None:
    """The int8 graphs give a perplexity on held-out verses within 5% of fp32."""
    int8 = LanguageModel(kjv_model, precision="int8")
    fp32_ppl, int8_ppl = lm.perplexity(test_verses), int8.perplexity(test_verses)
    assert abs(int8_ppl - fp32_ppl) <= 0.05 * fp32_ppl
    assert fp32_ppl < 1000


def test_apple_and_pear_salad(lm: LanguageModel) -> None:
    """"the apple and pear salad" outranks "the apple and pair salad". For this KJV model the
    margin (about 6 nats) comes from the vocabulary: "pear" is out of vocabulary and scored as
    <unk>, a whole class of rare words, which is likelier than the rare in-vocabulary "pair"."""
    ranked = lm.rank(["the apple and pair salad", "the apple and pear salad"])
    assert ranked[0].sentence == "the apple and pear salad"
    assert ranked[0].logprob - ranked[1].logprob > 1.0
