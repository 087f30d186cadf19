"""export/: the ONNX graphs reproduce the torch model for every cell, the model folder's manifest
describes them, and export refuses (writing nothing) when it cannot vouch for the graphs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from pocketlm.export.config import ExportConfig
from pocketlm.export.onnx_export import CHECK_SHAPES, ExportError, export
from pocketlm.pipeline.checkpoint import load_checkpoint
from pocketlm.pipeline.config import TrainConfig
from pocketlm.pipeline.train import train
from pocketlm.runtime import EOS_ID, ArtifactError, LanguageModel, PocketLMError
from pocketlm.runtime.artifact import read_manifest, sha256_file

from .conftest import flip_byte

#: (batch, length) shapes checked here: unlike export's (2, 5) example graph inputs.
SHAPES = ((1, 1), (3, 7), (5, 35), (2, 100))
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
#: A tied model whose hidden size differs from its embedding size (so it has a projection).
EMBEDDING, HIDDEN = 12, 16
TOLERANCE = 1e-4
#: Output layers; the toy vocabulary has 28 ids, so the adaptive layer gets small clusters.
OUTPUTS = {"full": {}, "adaptive": {"output": "adaptive", "cutoffs": (6, 14)}}


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module",
                params=[(c, t, o) for c in CELLS for t in (True, False) for o in OUTPUTS],
                ids=lambda p: f"{p[0]}-{'tied' if p[1] else 'untied'}-{p[2]}")
def exported(request: pytest.FixtureRequest, toy_data: Path,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bool, Path, Path]:
    """A 2-layer checkpoint of the given cell and output layer trained for two steps, and its
    export."""
    cell, tied, output = request.param
    root = tmp_path_factory.mktemp(f"{cell}-{tied}-{output}")
    config = TrainConfig.of(cell=cell, layers=2, embedding_size=EMBEDDING, hidden_size=HIDDEN,
                         dropout=0.1, tied=tied, batch_size=8, bptt=10, epochs=1, max_steps=2,
                         device="cpu", log_every=0, **OUTPUTS[output])
    train(config, toy_data, root / "checkpoint")
    export(root / "checkpoint", root / "model")
    return cell, tied, root / "checkpoint", root / "model"


def _reference_score(model: torch.nn.Module, tokens: np.ndarray, lengths: np.ndarray
                     ) -> np.ndarray:
    """Per-token log-probabilities computed straight from the torch RNNLM, one sentence at a
    time from its zero state, with <eos> as the first input."""
    out = np.zeros(tokens.shape, dtype=np.float32)
    with torch.no_grad():
        for b in range(tokens.shape[0]):
            n = int(lengths[b])
            ids = torch.from_numpy(tokens[b, :n])
            inputs = torch.cat([torch.tensor([EOS_ID]), ids[:-1]]).unsqueeze(0)
            logits, _ = model(inputs)
            logprobs = F.log_softmax(logits[0].double(), dim=-1)
            out[b, :n] = logprobs[torch.arange(n), ids].numpy()
    return out


def test_score_graph_matches_torch(exported: tuple[str, bool, Path, Path]) -> None:
    """score.onnx gives the torch model's per-token log-probabilities (zeros past each length,
    whatever the padding holds) at batch/length shapes other than the export example."""
    cell, tied, checkpoint, model_dir = exported
    model, _ = load_checkpoint(checkpoint)
    vocab = model.config.vocab_size
    session = _session(model_dir / "score.onnx")
    rng = np.random.default_rng(1)
    for batch, length in SHAPES:
        tokens = rng.integers(0, vocab, (batch, length), dtype=np.int64)
        lengths = rng.integers(1, length + 1, batch, dtype=np.int64)
        lengths[-1] = length
        (got,) = session.run(None, {"tokens": tokens, "lengths": lengths})
        assert got.shape == (batch, length) and got.dtype == np.float32
        expected = _reference_score(model, tokens, lengths)
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE,
                                   err_msg=f"{cell} tied={tied} at {(batch, length)}")
        for b in range(batch):
            assert np.all(got[b, lengths[b]:] == 0)
            assert np.all(got[b, :lengths[b]] < 0)


def test_step_graph_matches_torch(exported: tuple[str, bool, Path, Path]) -> None:
    """step.onnx gives the torch next-token log-probabilities and new state for zero and random
    states at several batch sizes, and chaining steps equals one torch pass over the sequence."""
    cell, tied, checkpoint, model_dir = exported
    model, _ = load_checkpoint(checkpoint)
    cfg = model.config
    names = list(model.cell.state_names)
    session = _session(model_dir / "step.onnx")
    assert [i.name for i in session.get_inputs()] == ["token"] + [f"state_{n}" for n in names]
    assert ([o.name for o in session.get_outputs()]
            == ["logprobs"] + [f"new_state_{n}" for n in names])
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for batch, _ in SHAPES:
            token = torch.randint(0, cfg.vocab_size, (batch,), generator=gen)
            for scale in (0.0, 0.7):
                state = tuple(torch.randn(cfg.layers, batch, cfg.hidden_size, generator=gen)
                              * scale for _ in names)
                logits, new_state = model(token.unsqueeze(1), state)
                expected = [F.log_softmax(logits[:, 0], dim=-1).numpy(),
                            *(s.numpy() for s in new_state)]
                feeds = {"token": token.numpy()}
                feeds.update({f"state_{n}": s.numpy() for n, s in zip(names, state)})
                got = session.run(None, feeds)
                assert len(got) == len(expected)
                for g, e in zip(got, expected):
                    assert g.shape == e.shape
                    np.testing.assert_allclose(g, e, rtol=0, atol=TOLERANCE,
                                               err_msg=f"{cell} tied={tied} batch {batch}")
        # 35 chained steps from the zero state == one torch pass over the sequence
        batch, length = 3, 35
        seq = torch.randint(0, cfg.vocab_size, (batch, length), generator=gen)
        logits, _ = model(seq)
        expected_seq = F.log_softmax(logits, dim=-1).numpy()
        state_np = {f"state_{n}": np.zeros((cfg.layers, batch, cfg.hidden_size), np.float32)
                    for n in names}
        for t in range(length):
            out = session.run(None, {"token": seq[:, t].numpy(), **state_np})
            np.testing.assert_allclose(out[0], expected_seq[:, t], rtol=0, atol=TOLERANCE)
            state_np = {f"state_{n}": s for n, s in zip(names, out[1:])}


def test_model_manifest(exported: tuple[str, bool, Path, Path]) -> None:
    """The model folder's manifest names both graphs with their inputs, outputs and files, the
    state layout of the cell, the recorded torch differences, and hashes every file; the int8
    graphs exist, load in onnxruntime and score close to fp32."""
    cell, tied, checkpoint, model_dir = exported
    m = read_manifest(model_dir, "model")
    ckpt = read_manifest(checkpoint, "checkpoint")
    names = ["h", "c"] if cell == "lstm" else ["h"]
    assert m["model"]["cell"] == cell and m["model"]["tied"] is tied
    assert m["model"]["layers"] == 2 and m["model"]["hidden_size"] == HIDDEN
    assert m["vocab_size"] == ckpt["model"]["vocab_size"]
    assert m["graphs"]["score"]["inputs"] == ["tokens", "lengths"]
    assert m["graphs"]["score"]["outputs"] == ["logprobs"]
    assert m["graphs"]["step"]["inputs"] == ["token"] + [f"state_{n}" for n in names]
    assert m["graphs"]["step"]["outputs"] == ["logprobs"] + [f"new_state_{n}" for n in names]
    assert m["state"] == [{"name": n, "input": f"state_{n}", "output": f"new_state_{n}",
                           "shape": [2, "batch", HIDDEN]} for n in names]
    assert m["scoring"] == {"log_base": "e", "start_context": "<eos>", "initial_state": "zeros",
                            "final_eos_predicted": True}
    assert m["training"]["checkpoint_manifest_sha256"] == sha256_file(checkpoint /
                                                                      "manifest.json")
    diffs = m["export"]["max_abs_diff"]["fp32"]
    assert set(diffs) == {"score", "step"}
    assert all(0 <= d <= m["export"]["tolerance"] for d in diffs.values())
    assert m["export"]["check_shapes"] == [list(s) for s in CHECK_SHAPES]
    for graph in ("score", "step"):
        files = m["graphs"][graph]["files"]
        assert files == {"fp32": f"{graph}.onnx", "int8": f"{graph}.int8.onnx"}
        for name in files.values():
            entry = m["files"][name]
            assert entry == {"bytes": (model_dir / name).stat().st_size,
                             "sha256": sha256_file(model_dir / name)}
            assert m["export"]["bytes"][name] == entry["bytes"]
            session = _session(model_dir / name)
            assert [i.name for i in session.get_inputs()] == m["graphs"][graph]["inputs"]
            assert [o.name for o in session.get_outputs()] == m["graphs"][graph]["outputs"]
    assert {"tokenizer.json", "README.md"} <= set(m["files"])
    assert (model_dir / "tokenizer.json").read_bytes() == (checkpoint /
                                                           "tokenizer.json").read_bytes()
    lines = ["the cat sees the ball .", "a child finds a small boat again .", "my friend"]
    fp32 = LanguageModel(model_dir).score_batch(lines)
    int8 = LanguageModel(model_dir, precision="int8").score_batch(lines)
    for a, b in zip(fp32, int8):
        assert abs(a - b) <= 0.05 * abs(a)
    assert m["model"]["output"] == ckpt["model"]["output"]
    assert m["output"]["name"] == ckpt["model"]["output"]
    if m["output"]["name"] == "adaptive":
        assert m["output"]["cutoffs"] == [6, 14]
        assert m["output"]["clusters"] == [{"ids": [0, 5]}, {"ids": [6, 13]},
                                           {"ids": [14, m["vocab_size"] - 1]}]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_step_distribution_is_normalised(exported: tuple[str, bool, Path, Path],
                                         precision: str) -> None:
    """The step graph's probabilities sum to 1 over the vocabulary (within 1e-4) for every
    output layer, from zero and random states."""
    cell, tied, checkpoint, model_dir = exported
    model, _ = load_checkpoint(checkpoint)
    cfg = model.config
    names = list(model.cell.state_names)
    session = _session(model_dir / f"step{'' if precision == 'fp32' else '.int8'}.onnx")
    rng = np.random.default_rng(3)
    for scale in (0.0, 0.8):
        feeds = {"token": rng.integers(0, cfg.vocab_size, 6, dtype=np.int64)}
        feeds.update({f"state_{n}": (rng.standard_normal((cfg.layers, 6, cfg.hidden_size))
                                     * scale).astype(np.float32) for n in names})
        logprobs = session.run(None, feeds)[0]
        assert logprobs.shape == (6, cfg.vocab_size)
        np.testing.assert_allclose(np.exp(logprobs.astype(np.float64)).sum(axis=1), 1.0,
                                   rtol=0, atol=1e-4)


def test_step_chain_sums_to_score(exported: tuple[str, bool, Path, Path]) -> None:
    """Feeding a sentence through the step graph (from the zero state, <eos> first) and adding
    the log-probabilities of its words and final <eos> gives the score graph's sum."""
    cell, tied, checkpoint, model_dir = exported
    model, _ = load_checkpoint(checkpoint)
    cfg = model.config
    names = list(model.cell.state_names)
    score, step = _session(model_dir / "score.onnx"), _session(model_dir / "step.onnx")
    rng = np.random.default_rng(4)
    words = rng.integers(2, cfg.vocab_size, 9, dtype=np.int64)
    tokens = np.append(words, EOS_ID)
    (per_token,) = score.run(None, {"tokens": tokens[None], "lengths": np.array([len(tokens)])})
    state = {f"state_{n}": np.zeros((cfg.layers, 1, cfg.hidden_size), np.float32)
             for n in names}
    total, previous = 0.0, EOS_ID
    for token in tokens:
        out = step.run(None, {"token": np.array([previous]), **state})
        total += float(out[0][0, token])
        state = {f"state_{n}": s for n, s in zip(names, out[1:])}
        previous = token
    assert abs(total - float(per_token.sum())) <= 1e-4 * len(tokens)


def test_toy_model_folder(toy_model: Path) -> None:
    """The session's toy model folder is a complete, verified artifact with a model card."""
    m = read_manifest(toy_model, "model")
    assert sorted(p.name for p in toy_model.iterdir()) == sorted([*m["files"], "manifest.json"])
    card = (toy_model / "README.md").read_text(encoding="utf-8")
    assert "pocketlm model" in card and "lstm" in card
    assert m["metrics"]["valid_ppl"] is not None and m["metrics"]["valid_ppl"] > 1
    assert set(m["versions"]) >= {"python", "pocketlm", "torch", "onnx", "onnxruntime"}


def test_no_int8(toy_checkpoint: Path, tmp_path: Path) -> None:
    """ExportConfig(int8=False) writes only fp32 graphs; asking the runtime for int8 then fails
    with a PocketLMError that lists what the folder has."""
    out = tmp_path / "model"
    m = export(toy_checkpoint, out, ExportConfig(int8=False))
    assert m["graphs"]["score"]["files"] == {"fp32": "score.onnx"}
    assert not list(out.glob("*.int8.onnx"))
    assert LanguageModel(out).score("the cat") < 0
    with pytest.raises(PocketLMError, match="fp32"):
        LanguageModel(out, precision="int8")


def test_impossible_tolerance_writes_nothing(toy_checkpoint: Path, toy_model: Path,
                                             tmp_path: Path) -> None:
    """With a tolerance below the real onnxruntime/torch difference, export raises ExportError
    and leaves neither the output folder nor a `.partial` sibling behind."""
    # Premise: the same export (same seed, same random check inputs) differs from torch by more
    # than 1e-12; its recorded differences say so.
    recorded = read_manifest(toy_model, "model")["export"]["max_abs_diff"]["fp32"]
    assert max(recorded.values()) > 1e-12
    out = tmp_path / "model"
    with pytest.raises(ExportError) as excinfo:
        export(toy_checkpoint, out, ExportConfig(tolerance=1e-12))
    message = str(excinfo.value)
    assert "nothing was written" in message and "\n" not in message
    assert ".onnx" in message
    assert isinstance(excinfo.value, PocketLMError)
    assert list(tmp_path.iterdir()) == []


def test_failed_export_keeps_previous_model(toy_checkpoint: Path, toy_model: Path,
                                            tmp_path: Path) -> None:
    """A failed export with --overwrite leaves the previous model folder as it was."""
    out = tmp_path / "model"
    shutil.copytree(toy_model, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ExportError):
        export(toy_checkpoint, out, ExportConfig(tolerance=1e-12), overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_export_refuses_non_empty_out(toy_checkpoint: Path, tmp_path: Path) -> None:
    """Export will not replace a non-empty folder without overwrite."""
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep").write_text("keep", encoding="utf-8")
    with pytest.raises(PocketLMError, match="--overwrite"):
        export(toy_checkpoint, out)
    assert [p.name for p in out.iterdir()] == ["keep"]


def test_corrupted_checkpoint_is_refused(toy_checkpoint: Path, tmp_path: Path) -> None:
    """A checkpoint whose model.safetensors has one flipped byte is refused with ArtifactError
    naming the file; no model folder is written."""
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(toy_checkpoint, checkpoint)
    weights = checkpoint / "model.safetensors"
    flip_byte(weights, mask=0x01)
    out = tmp_path / "model"
    with pytest.raises(ArtifactError) as excinfo:
        export(checkpoint, out)
    assert str(weights) in str(excinfo.value) and "pocketlm train" in str(excinfo.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_non_checkpoint_is_refused(toy_data: Path, tmp_path: Path) -> None:
    """A data folder passed as the checkpoint is refused as the wrong kind."""
    with pytest.raises(ArtifactError, match="'checkpoint'"):
        export(toy_data, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_export_manifest_is_json_on_disk(toy_model: Path) -> None:
    """The manifest on disk is what read_manifest returns (plain JSON, no extra state)."""
    on_disk = json.loads((toy_model / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == read_manifest(toy_model, "model")


def test_adaptive_score_graph_never_builds_the_vocabulary(
        exported: tuple[str, bool, Path, Path]) -> None:
    """In an adaptive model's score graph no computed tensor has a vocabulary-sized axis (only
    the embedding table does); the step graph does output [batch, vocab]."""
    import onnx

    cell, tied, checkpoint, model_dir = exported
    m = read_manifest(model_dir, "model")
    if m["output"]["name"] != "adaptive":
        pytest.skip("full softmax builds the distribution by design")
    vocab = m["vocab_size"]

    def computed_dims(path: Path) -> list[tuple]:
        graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
        initializers = {i.name for i in graph.initializer}
        return [tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
                for v in (*graph.value_info, *graph.output) if v.name not in initializers]

    assert not [d for d in computed_dims(model_dir / "score.onnx") if vocab in d]
    assert any(vocab in d for d in computed_dims(model_dir / "step.onnx"))
