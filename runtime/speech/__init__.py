"""pocketlm.runtime.speech: pocketlm in speech recognition (pocketsphinx and pyctcdecode come
with the ``pocketlm[speech]`` extra; the rest needs only the base install).

Rescore a recogniser's candidates with a pocketlm model, or let a CTC beam search consult it:

* :mod:`.nbest` — the n-best reader and writer: ``score<TAB>sentence`` text, JSON lines, Kaldi
  n-best text; rescored lists as JSON lines or text;
* :mod:`.lattice` — word lattices in HTK SLF (pocketsphinx's ``write_htk``, or any recogniser);
* :mod:`.wordstep` — whole words fed to many hypotheses at once (hidden punctuation optional);
* :mod:`.prefix` — n-best scoring through a prefix trie (each distinct prefix fed once);
* :mod:`.scorers` — pocketlm and KenLM n-grams behind one batched scorer interface;
* :mod:`.rescore_lattice` — lattice expansion with those scorers, merging on the last k words;
* :mod:`.combine` — log-linear combination and weight tuning by cross-validation;
* :mod:`.ctc` — a ``pyctcdecode`` language model backed by pocketlm's state API;
* :mod:`.cli` — ``pocketlm rescore``, registered as an entry point of ``pocketlm.commands``.

Depends on the core runtime (:class:`~pocketlm.runtime.LanguageModel` and its state API); the
core never imports this package (an import-linter contract in pyproject.toml), and this file
imports nothing.
"""
