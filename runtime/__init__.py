"""pocketlm.runtime: run an exported pocketlm model with onnxruntime, numpy and tokenizers only.

>>> from pocketlm.runtime import LanguageModel
>>> lm = LanguageModel("runs/kjv/model")        # doctest: +SKIP
>>> lm.rank(["and god said", "said god and"])[0].sentence   # doctest: +SKIP
'and god said'
"""

from .artifact import (EOS_ID, EOS_TOKEN, FORMAT_VERSION, UNK_ID, UNK_TOKEN, ArtifactError,
                       InputError, PocketLMError, read_manifest)
from .generation import GenerationStream
from .model import LanguageModel
from .results import Generation, Rescored, SentenceScore, WordScore, detokenize
from .state import State

__all__ = [
    "ArtifactError", "EOS_ID", "EOS_TOKEN", "FORMAT_VERSION", "Generation", "GenerationStream",
    "InputError", "LanguageModel", "PocketLMError", "Rescored", "SentenceScore", "State",
    "UNK_ID", "UNK_TOKEN", "WordScore", "detokenize", "read_manifest",
]
