"""pocketlm.runtime: run an exported pocketlm model with onnxruntime, numpy and tokenizers only.

>>> from pocketlm.runtime import LanguageModel
>>> lm = LanguageModel("runs/kjv/model")        # doctest: +SKIP
>>> lm.rank(["and god said", "said god and"])[0].sentence   # doctest: +SKIP
'and god said'

``load_model(path)`` opens any model folder by its task: a LanguageModel, a Classifier (one label
per sentence) or a Tagger (BIO2 tags and entity spans).
"""

from .artifact import (EOS_ID, EOS_TOKEN, FORMAT_VERSION, UNK_ID, UNK_TOKEN, ArtifactError,
                       InputError, PocketLMError, read_manifest)
from .classifier import Classifier, Prediction
from .generation import GenerationStream
from .loading import load_model
from .model import LanguageModel
from .results import Generation, Rescored, SentenceScore, WordScore, detokenize
from .state import State
from .tagger import Entity, Tagged, Tagger

__all__ = [
    "ArtifactError", "Classifier", "EOS_ID", "EOS_TOKEN", "Entity", "FORMAT_VERSION",
    "Generation", "GenerationStream", "InputError", "LanguageModel", "PocketLMError",
    "Prediction", "Rescored", "SentenceScore", "State", "Tagged", "Tagger", "UNK_ID",
    "UNK_TOKEN", "WordScore", "detokenize", "load_model", "read_manifest",
]
