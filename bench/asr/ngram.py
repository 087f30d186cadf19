"""The corpus splits as text, and the n-grams built from the train split.

* ``first-pass 3-gram``: interpolated Kneser-Ney (``kaldingram``) over the train split's spoken
  words (lowercase, no punctuation: what the recogniser writes); pocketsphinx decodes with it.
* ``5-gram``: the same builder, order 5, over the same spoken words: the KenLM rescoring
  baseline, queried with the ``kenlm`` module.
* ``5-gram on tokens``: order 5 over pocketlm's own token stream (punctuation kept, words outside
  the model's vocabulary as ``<unk>``), only to print its test sentence perplexity beside the
  reference 5-gram's 37.05 (KenLM's ``lmplz``, modified Kneser-Ney), so the builder is known to
  be a fair one.

ARPA files are cached in the work folder by a key of the split's content.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
from pathlib import Path

from synth import reference_words

REFERENCE_5GRAM_PPL = 37.05


def build_arpa(lines: list[str], order: int, out: Path) -> Path:
    """An order-``order`` Kneser-Ney ARPA of ``lines`` (one sentence each) at ``out`` (cached)."""
    key = hashlib.sha256(("\n".join(lines) + f"\n{order}").encode()).hexdigest()[:12]
    path = out.with_name(f"{out.stem}.{key}.arpa")
    if path.exists():
        return path
    text = path.with_suffix(".txt")
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp = path.with_suffix(".tmp")
    subprocess.run(["kaldingram", "train", "--ngram-order", str(order), "--text", str(text),
                    "--lm", str(tmp)], check=True, capture_output=True)
    tmp.rename(path)
    text.unlink()
    return path


def spoken(lines: list[str]) -> list[str]:
    return [" ".join(reference_words(line)) for line in lines]


def token_lines(lines: list[str], model_dir: Path) -> list[str]:
    """Lines as pocketlm's tokens, out-of-vocabulary words as ``<unk>``."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    return [" ".join(tok.id_to_token(i) for i in enc.ids)
            for enc in tok.encode_batch(lines)]


def sentence_ppl(arpa: Path, lines: list[str]) -> float:
    """Sentence perplexity with KenLM: <s> context, </s> predicted, log10 → e."""
    import kenlm

    model = kenlm.Model(str(arpa))
    total = sum(model.score(line, bos=True, eos=True) for line in lines) * math.log(10)
    tokens = sum(len(line.split()) + 1 for line in lines)
    return math.exp(-total / tokens)
