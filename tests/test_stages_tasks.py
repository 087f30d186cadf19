"""``pocketlm train --task``: a labelled task trains and resumes through the command line (a
checkpoint written before ``--suffix-size`` included), and an option that belongs to the other
kind of model is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pocketlm.runtime.cli import cli

SMALL = ["--embedding-size", "16", "--hidden-size", "16", "--device", "cpu", "--quiet"]


def test_train_and_resume_a_tagger(toy_tag_data: Path, tmp_path: Path) -> None:
    runner, out = CliRunner(), tmp_path / "ckpt"
    result = runner.invoke(cli, ["train", "--task", "tag", "--data", str(toy_tag_data), "--out",
                                 str(out), "--max-steps", "3", "--epochs", "2", *SMALL])
    assert result.exit_code == 0, result.output
    assert "stopped by max_steps at step 3" in result.output
    result = runner.invoke(cli, ["train", "--resume", str(out), "--max-steps", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"]["resumes"] == 1 and manifest["status"]["reason"] == "epochs"
    assert manifest["config"]["task"] == "tag" and manifest["status"]["epoch"] == 3


def test_a_checkpoint_from_before_suffix_size_resumes_and_exports(toy_tag_data: Path,
                                                                  tmp_path: Path) -> None:
    """Checkpoints without the field hold the full suffix table: they still resume and export
    as they did, and only a change of the table is refused."""
    from pocketlm.pipeline.checkpoint import (LAST, load_training_state,
                                              save_training_state)
    from pocketlm.runtime.artifact import write_manifest

    runner, out = CliRunner(), tmp_path / "ckpt"
    result = runner.invoke(cli, ["train", "--task", "tag", "--data", str(toy_tag_data), "--out",
                                 str(out), "--max-steps", "2", "--suffix-size", "0", *SMALL])
    assert result.exit_code == 0, result.output
    groups, meta = load_training_state(out / LAST)          # as an older pocketlm wrote it
    del meta["config"]["suffix_size"], meta["model"]["suffix_size"]
    save_training_state(out / LAST, groups, meta)
    body = json.loads((out / "manifest.json").read_text())
    del body["config"]["suffix_size"], body["model"]["suffix_size"]
    write_manifest(out, "checkpoint", body, list(body.pop("files")))
    result = runner.invoke(cli, ["train", "--resume", str(out), "--max-steps", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"]["step"] == 3 and manifest["model"]["suffix_size"] == 0
    result = runner.invoke(cli, ["export", "--checkpoint", str(out), "--out",
                                 str(tmp_path / "model"), "--no-int8"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["train", "--resume", str(out), "--suffix-size", "4", "--quiet"])
    assert result.exit_code != 0 and "suffix_size=0" in result.output


def test_options_of_the_other_kind_are_refused(toy_tag_data: Path, toy_data: Path,
                                               tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--task", "tag", "--data", str(toy_tag_data), "--out",
                                 str(tmp_path / "a"), "--bptt", "20", *SMALL])
    assert result.exit_code == 2
    assert "--bptt applies to the language model, not to --task tag" in result.output
    result = runner.invoke(cli, ["train", "--data", str(toy_data), "--out", str(tmp_path / "b"),
                                 "--pooling", "mean", *SMALL])
    assert result.exit_code == 2 and "--pooling applies to the labelled tasks" in result.output
    result = runner.invoke(cli, ["train", "--task", "classify", "--data", str(toy_tag_data),
                                 "--out", str(tmp_path / "c"), *SMALL])
    assert result.exit_code == 1 and "ingest it with --task classify" in result.output
