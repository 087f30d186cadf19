"""export/calibration.py: what a language model's int8 graphs are calibrated on. Without its
data folder the calibration text is sampled from the model. (That the calibrated graphs compute
one function: tests/test_quantize.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketlm.export.calibration import calibration_tokens


def test_calibration_without_data_samples_the_model(toy_checkpoint: Path) -> None:
    """Without its data folder, calibration text is sampled from the model: in-vocabulary ids
    of the requested shape, the same for the same seed."""
    from pocketlm.pipeline.checkpoint import load_checkpoint

    model, _ = load_checkpoint(toy_checkpoint)
    tokens, origin = calibration_tokens(model, None, seed=3, rows=4, length=6)
    assert origin == "sampled" and tokens.shape == (4, 6)
    assert 0 <= tokens.min() and tokens.max() < model.config.vocab_size
    assert np.array_equal(tokens, calibration_tokens(model, None, seed=3, rows=4, length=6)[0])
