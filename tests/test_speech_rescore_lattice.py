"""runtime/speech/rescore_lattice.py: lattice expansion with pocketlm and an n-gram, on a
hand-made lattice and on pocketsphinx's lattice of a flite-synthesised utterance."""

from __future__ import annotations

import itertools
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from pocketlm.runtime import InputError, LanguageModel
from pocketlm.runtime.speech.lattice import Lattice, Link, from_pocketsphinx
from pocketlm.runtime.speech.rescore_lattice import Histories, expand, search, search_weights
from pocketlm.runtime.speech.scorers import PocketLMScorer

from .conftest import needs_program, toy_lines


@pytest.fixture(scope="module")
def lm(toy_model: Path) -> LanguageModel:
    return LanguageModel(toy_model)


def _diamond() -> Lattice:
    """the cat sees {the ball | cat ball}; the wrong middle word is acoustically better."""
    links = [Link(0, 1, "", -1.0), Link(1, 2, "the", -5.0), Link(2, 3, "cat", -6.0),
             Link(3, 4, "sees", -4.0), Link(4, 5, "the", -5.5), Link(4, 5, "cat", -5.0),
             Link(5, 6, "ball", -7.0), Link(5, 6, "tree", -7.2), Link(6, 7, "", -0.5)]
    return Lattice(8, links, 0, 7, id="u1")


def _paths(lat: Lattice) -> list[tuple[list[str], float]]:
    out = []
    middle = [k for k in lat.links if k.start == 4]
    last = [k for k in lat.links if k.start == 5]
    for a, b in itertools.product(middle, last):
        words = ["the", "cat", "sees", a.word, b.word]
        out.append((words, -1.0 - 5.0 - 6.0 - 4.0 + a.acoustic + b.acoustic - 0.5))
    return out


def test_exact_nbest_equals_enumeration(lm: LanguageModel) -> None:
    lat = _diamond()
    got = expand(lat, [PocketLMScorer(lm)], {"acoustic": 1.0, "pocketlm": 1.0}, history=None,
                 beam=10, nbest=10)
    assert got.id == "u1" and len(got.hypotheses) == 4
    expect = sorted(((ac + lm.score(" ".join(w)), " ".join(w), ac) for w, ac in _paths(lat)),
                    reverse=True)
    assert [h.text for h in got.hypotheses] == [t for _, t, _ in expect]
    for h, (_, _, ac) in zip(got.hypotheses, expect):
        assert h.features["acoustic"] == pytest.approx(ac)
        assert h.features["pocketlm"] == pytest.approx(lm.score(h.text), abs=1e-4)
        assert h.features["words"] == 5


def test_the_language_model_overrules_the_acoustics(lm: LanguageModel) -> None:
    lat = _diamond()
    plain = expand(lat, [PocketLMScorer(lm)], {"acoustic": 1.0}, history=2, beam=4, nbest=1)
    assert plain.hypotheses[0].text == "the cat sees cat ball"
    with_lm = expand(lat, [PocketLMScorer(lm)], {"acoustic": 1.0, "pocketlm": 1.0},
                     history=2, beam=4, nbest=1)
    assert with_lm.hypotheses[0].text == "the cat sees the ball"


def test_bad_arguments(lm: LanguageModel) -> None:
    with pytest.raises(InputError, match="weights for unknown features"):
        expand(_diamond(), [PocketLMScorer(lm)], {"kenlm": 1.0})
    cut = Lattice(3, [Link(0, 1, "the", -1.0)], 0, 2, id="cut")
    with pytest.raises(InputError, match="lattice cut: no path reaches the end node 2"):
        expand(cut, [PocketLMScorer(lm)], {"acoustic": 1.0})


@needs_program("flite", "sox")
def test_pocketsphinx_lattice_of_flite_speech(lm: LanguageModel, tmp_path: Path) -> None:
    """Real speech, real recogniser: flite says a sentence, pocketsphinx decodes it with a
    3-gram of the toy corpus, and its lattice is rescored with pocketlm."""
    pocketsphinx = pytest.importorskip("pocketsphinx")
    from pocketsphinx.lm import ArpaBoLM

    corpus = "\n".join(line.rstrip(" .!") for line in toy_lines())
    arpa = ArpaBoLM(text=corpus, add_start=True)
    arpa.compute()
    arpa.write_file(str(tmp_path / "toy.arpa"))
    raw = tmp_path / "raw.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", "the old man sees the red house", "-o",
                    str(raw)], check=True, capture_output=True)
    subprocess.run(["sox", "-R", str(raw), "-r", "16000", "-c", "1", "-b", "16",
                    str(tmp_path / "16k.wav")], check=True, capture_output=True)
    with wave.open(str(tmp_path / "16k.wav")) as w:
        audio = w.readframes(w.getnframes())
    decoder = pocketsphinx.Decoder(lm=str(tmp_path / "toy.arpa"), loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(audio, full_utt=True)
    decoder.end_utt()
    lattice = from_pocketsphinx(decoder, "flite1")
    assert lattice.id == "flite1" and len(lattice.links) > 5
    got = expand(lattice, [PocketLMScorer(lm)], {"acoustic": 1.0, "pocketlm": 5.0},
                 history=None, beam=20, nbest=5)
    texts = [h.text for h in got.hypotheses]
    assert "the old man sees the red house" in texts, texts
    for h in got.hypotheses:
        assert h.features["pocketlm"] == pytest.approx(lm.score(h.text), abs=1e-4)
    assert np.isfinite([h.features["acoustic"] for h in got.hypotheses]).all()


def test_each_word_history_is_scored_once(lm: LanguageModel) -> None:
    """Two copies of every link (as a recogniser's time variants make them) cost no extra
    language-model work: the trie holds each distinct word prefix once."""
    lat = _diamond()
    doubled = Lattice(lat.nodes, lat.links + [Link(k.start, k.end, k.word, k.acoustic - 1.0)
                                              for k in lat.links], lat.start, lat.end, id="u2")
    for lattice in (lat, doubled):
        trie = Histories([PocketLMScorer(lm)], None)
        got = expand(lattice, [PocketLMScorer(lm)], {"acoustic": 1.0, "pocketlm": 1.0},
                     history=None, beam=10, nbest=10, trie=trie)
        # the, the cat, the cat sees, then {the, cat} x {ball, tree}
        assert trie.steps == 3 + 2 + 4
        assert len(got.hypotheses) == 4
    best = got.hypotheses[0]
    assert best.features["pocketlm"] == pytest.approx(lm.score(best.text), abs=1e-4)


def test_posteriors_become_a_feature(lm: LanguageModel) -> None:
    links = [Link(0, 1, "the", -1.0, posterior=1.0), Link(1, 2, "cat", -1.0, posterior=0.25),
             Link(1, 2, "ball", -1.5, posterior=0.75)]
    got = expand(Lattice(3, links, 0, 2, id="p"), [PocketLMScorer(lm)], {"posterior": 1.0},
                 history=None, beam=4, nbest=4)
    assert [h.text for h in got.hypotheses] == ["the ball", "the cat"]
    assert got.hypotheses[0].features["posterior"] == pytest.approx(np.log(0.75))
    assert got.hypotheses[1].features["words"] == 2


def test_search_shares_the_lm_scale(lm: LanguageModel) -> None:
    assert search_weights(["pocketlm", "lm"], 10.0) == {"acoustic": 1.0, "pocketlm": 5.0,
                                                        "lm": 5.0}
    got, trie = search(_diamond(), [PocketLMScorer(lm)], 2.0, history=None, beam=10)
    same = expand(_diamond(), [PocketLMScorer(lm)], {"acoustic": 1.0, "pocketlm": 2.0},
                  history=None, beam=10)
    assert [h.text for h in got.hypotheses] == [h.text for h in same.hypotheses]
    assert trie.steps == 3 + 2 + 4
