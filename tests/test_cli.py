"""runtime/cli.py and stages/: every command through click's CliRunner on the toy corpus,
one-line errors for bad input, and the runtime commands running without torch."""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pocketlm.runtime import LanguageModel
from pocketlm.runtime.cli import cli

from .conftest import BLOCK_TRAINING_STACK, INT8_NATS_PER_TOKEN, flip_byte

COMMANDS = ("ingest", "train", "export", "evaluate", "score", "rank", "rescore", "generate",
            "perplexity", "info", "run")
TINY = ["--preset", "tiny", "--layers", "1", "--hidden-size", "16", "--embedding-size", "16",
        "--epochs", "1", "--batch-size", "8", "--bptt", "10", "--device", "cpu",
        "--output", "full"]


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    result = invoke(*args, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def assert_one_line_error(result: Result, *needles: str) -> str:
    """Exit code != 0, no traceback, and the error is one line starting with `Error: `."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, (AssertionError, TypeError, KeyError, ValueError))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.output
    assert lines[-1].startswith("Error: "), result.output
    assert sum(line.startswith("Error") for line in lines) == 1
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    return lines[-1]


# -- help ---------------------------------------------------------------------------------------

def test_group_help() -> None:
    """`pocketlm --help` (and -h) lists every command."""
    for flag in ("--help", "-h"):
        result = ok(flag)
        assert "Usage:" in result.output
        for command in COMMANDS:
            assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(command: str) -> None:
    """Every command has a --help page naming its usage and its options."""
    result = ok(command, "--help")
    assert f"Usage: cli {command}" in result.output or f"{command} [OPTIONS]" in result.output
    assert "--help" in result.output
    assert "--" in result.output.split("Options:")[1]


@pytest.mark.parametrize("stage", ["ingest", "train", "export", "evaluate", "run"])
def test_stage_help_is_its_line_in_stages(stage: str) -> None:
    """A stage command's --help opens with its line in STAGES, the one `pocketlm --help`
    shows before the stages are loaded."""
    from pocketlm.runtime.group import STAGES

    text = " ".join(ok(stage, "--help").output.split("Options:")[0].split())
    assert text.startswith(f"Usage: cli {stage} [OPTIONS] {STAGES[stage]}")


def test_version() -> None:
    """--version prints the installed version."""
    from importlib import metadata

    assert metadata.version("pocketlm") in ok("--version").output


# -- the stages ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_model(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ingest → train → export of the toy corpus, all through the CLI."""
    logger = logging.getLogger("pocketlm")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    root = tmp_path_factory.mktemp("cli")
    try:
        data, ckpt, model = root / "data", root / "checkpoint", root / "model"
        result = ok("ingest", "--out", str(data), "--data-files", str(toy_corpus),
                    "--vocab-size", "100")
        assert f"wrote {data}" in result.stdout and "vocabulary" in result.stdout
        result = ok("train", "--data", str(data), "--out", str(ckpt), *TINY)
        assert f"wrote {ckpt}" in result.stdout and "valid perplexity" in result.stdout
        result = ok("export", "--checkpoint", str(ckpt), "--out", str(model))
        assert f"wrote {model}" in result.stdout and "score.onnx" in result.stdout
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    return {"data": data, "checkpoint": ckpt, "model": model}


def test_stages_write_artifacts(cli_model: dict[str, Path]) -> None:
    """The CLI stages write complete artifacts with the requested settings."""
    from pocketlm.runtime.artifact import read_manifest

    data = read_manifest(cli_model["data"], "data")
    assert data["config"]["vocab_size"] == 100 and data["vocab_size"] < 100
    ckpt = read_manifest(cli_model["checkpoint"], "checkpoint")
    expected = {"vocab_size": data["vocab_size"], "cell": "lstm", "layers": 1,
                "embedding_size": 16, "hidden_size": 16, "tied": True, "output": "full"}
    assert {k: ckpt["model"][k] for k in expected} == expected
    assert ckpt["config"]["epochs"] == 1 and ckpt["config"]["bptt"] == 10
    assert ckpt["config"]["batch_size"] == 8 and ckpt["environment"]["device"] == "cpu"
    model = read_manifest(cli_model["model"], "model")
    assert set(model["graphs"]["score"]["files"]) == {"fp32", "int8"}
    assert LanguageModel(cli_model["model"]).score("the cat sees the ball .") < 0


def test_export_options(cli_model: dict[str, Path], tmp_path: Path) -> None:
    """export --no-int8 writes only fp32 graphs; a too-small --tolerance fails in one line and
    writes nothing."""
    out = tmp_path / "m"
    ok("export", "--checkpoint", str(cli_model["checkpoint"]), "--out", str(out), "--no-int8")
    assert not list(out.glob("*.int8.onnx")) and (out / "score.onnx").is_file()
    bad = tmp_path / "bad"
    result = invoke("export", "--checkpoint", str(cli_model["checkpoint"]), "--out", str(bad),
                    "--tolerance", "1e-15")
    assert_one_line_error(result, "nothing was written")
    assert not bad.exists()


def test_overwrite(cli_model: dict[str, Path], tmp_path: Path) -> None:
    """A second export into a non-empty folder fails until --overwrite is given."""
    out = tmp_path / "m"
    ok("export", "--checkpoint", str(cli_model["checkpoint"]), "--out", str(out), "--no-int8")
    result = invoke("export", "--checkpoint", str(cli_model["checkpoint"]), "--out", str(out))
    assert_one_line_error(result, str(out), "--overwrite")
    assert not list(out.glob("*.int8.onnx"))
    ok("export", "--checkpoint", str(cli_model["checkpoint"]), "--out", str(out), "--overwrite")
    assert (out / "score.int8.onnx").is_file()


# -- runtime commands ---------------------------------------------------------------------------

def test_score_arguments(toy_model: Path) -> None:
    """score prints one tab-separated line per sentence: logprob, perplexity, OOV count,
    sentence; the numbers are the runtime's."""
    lm = LanguageModel(toy_model)
    sentences = ["the cat sees the ball .", "the zebra"]
    result = ok("score", "--model", str(toy_model), *sentences)
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line, sentence, s in zip(lines, sentences, lm.analyze(sentences)):
        fields = line.split("\t")
        assert fields[-1] == sentence
        assert float(fields[0]) == pytest.approx(s.logprob, abs=1e-3)
        assert fields[1].startswith("ppl") and float(fields[1][3:]) == pytest.approx(
            s.perplexity, abs=0.01)
        assert fields[2] == f"oov {s.oov}"
    assert lines[1].split("\t")[2] == "oov 1"


def test_score_stdin_and_json(toy_model: Path) -> None:
    """score reads one sentence per stdin line when given none; --json prints one object per
    line with logprob, tokens, oov and perplexity."""
    lm = LanguageModel(toy_model)
    sentences = ["the cat sees the ball .", "a child likes a tree !", ""]
    result = ok("score", "--model", str(toy_model), "--json", input="\n".join(sentences) + "\n")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["sentence"] for r in rows] == sentences
    for row, s in zip(rows, lm.analyze(sentences)):
        assert row["logprob"] == pytest.approx(s.logprob, abs=1e-6)
        assert row["tokens"] == s.tokens and row["oov"] == s.oov
        assert row["perplexity"] == pytest.approx(math.exp(-s.logprob / s.tokens))
    assert rows[2]["tokens"] == 1
    args = ok("score", "--model", str(toy_model), "--json", "--precision", "int8",
              "--threads", "1", sentences[0])
    # The int8 graph's integer sums are exact on every CPU (tests/test_quantize.py), so its
    # distance from fp32 is a property of the model, not of the CPU: at most
    # INT8_NATS_PER_TOKEN a token (a saturating kernel put this sentence 0.47 nats off).
    int8 = json.loads(args.stdout)
    assert int8["tokens"] == rows[0]["tokens"]
    assert abs(int8["logprob"] - rows[0]["logprob"]) <= INT8_NATS_PER_TOKEN["toy"] * int8["tokens"]


def test_rank(toy_model: Path) -> None:
    """rank --json is a list best first with ranks 1..n; plain output is in the same order."""
    candidates = ["ball the . sees cat the", "the cat sees the ball .", "cat cat cat cat"]
    result = ok("rank", "--model", str(toy_model), "--json", *candidates)
    rows = json.loads(result.stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["sentence"] == "the cat sees the ball ."
    assert [r["logprob"] for r in rows] == sorted((r["logprob"] for r in rows), reverse=True)
    assert sorted(r["sentence"] for r in rows) == sorted(candidates)
    plain = ok("rank", "--model", str(toy_model), input="\n".join(candidates) + "\n")
    assert [line.split("\t")[-1] for line in plain.stdout.splitlines()] == \
        [r["sentence"] for r in rows]


def test_generate(toy_model: Path) -> None:
    """generate --seed is reproducible and matches LanguageModel.generate with the same seed and
    num_samples; --json carries prompt, continuation, words, log-probabilities and why it
    stopped; the prompt is printed before the text (one sample is streamed word by word)."""
    lm = LanguageModel(toy_model)
    args = ("generate", "--model", str(toy_model), "--seed", "7", "--num", "3")
    first, second = ok(*args).stdout, ok(*args).stdout
    assert first == second
    assert first.splitlines() == lm.generate(seed=7, num_samples=3)
    rows = [json.loads(line) for line in ok(*args, "--json", "--prompt", "the cat").stdout
            .splitlines()]
    samples = lm.samples("the cat", seed=7, num_samples=3)
    assert [r["generated"] for r in rows] == [g.text for g in samples]
    assert all(r["prompt"] == "the cat" for r in rows)
    assert [r["words"] for r in rows] == [list(g.words) for g in samples]
    assert [r["finish"] for r in rows] == [g.finish for g in samples]
    single = ok("generate", "--model", str(toy_model), "--seed", "4", "--prompt", "a bird")
    assert single.stdout == f"a bird {lm.generate('a bird', seed=4)}\n"
    greedy = ok("generate", "--model", str(toy_model), "--temperature", "0", "--prompt",
                "the dog").stdout.strip()
    assert greedy == f"the dog {lm.generate('the dog', temperature=0)}"
    capped = ok("generate", "--model", str(toy_model), "--max-words", "2", "--seed", "1")
    assert len(capped.stdout.split()) <= 2


def test_evaluate(toy_model: Path, toy_data: Path) -> None:
    """evaluate prints the split's stream perplexity; --json gives the same figure."""
    result = ok("evaluate", "--model", str(toy_model), "--data", str(toy_data),
                "--batch-size", "2", "--json")
    row = json.loads(result.stdout)
    assert row["split"] == "test" and row["backend"] == "onnx" and row["precision"] == "fp32"
    assert row["perplexity"] == pytest.approx(math.exp(row["nll"] / row["tokens"]))
    assert 1 < row["perplexity"] < 10
    text = ok("evaluate", "--model", str(toy_model), "--data", str(toy_data),
              "--batch-size", "2").stdout
    assert text.startswith(f"test perplexity {row['perplexity']:.3f} (onnx, fp32, ")
    assert f"{row['tokens']:,} predicted tokens" in text
    valid = json.loads(ok("evaluate", "--model", str(toy_model), "--data", str(toy_data),
                          "--split", "valid", "--batch-size", "2", "--json").stdout)
    assert valid["split"] == "valid" and valid["tokens"] != row["tokens"]


def test_run_end_to_end(toy_corpus: Path, tmp_path: Path) -> None:
    """`run` does ingest, train and export into OUT/{data,checkpoint,model} and reports scores
    and a generated line."""
    out = tmp_path / "run"
    result = ok("run", "--out", str(out), "--data-files", str(toy_corpus), "--vocab-size", "100",
                "--layers", "1", "--hidden-size", "16", "--embedding-size", "16",
                "--batch-size", "8", "--bptt", "10", "--epochs", "1", "--device", "cpu",
                "--cutoffs", "6,14")                  # the toy vocabulary has 28 ids
    for part in ("data", "checkpoint", "model"):
        assert (out / part / "manifest.json").is_file()
        assert f"{out / part}" in result.stdout
    assert "valid perplexity" in result.stdout
    assert result.stdout.count("score ") == 2 and "generated:" in result.stdout
    lm = LanguageModel(out / "model")
    assert lm.manifest["model"]["hidden_size"] == 16
    assert lm.manifest["training"]["config"]["epochs"] == 1
    assert lm.manifest["output"]["name"] == "adaptive"


def test_run_refuses_existing_output_first(toy_corpus: Path, tmp_path: Path) -> None:
    """`run` checks all three output folders before doing any work."""
    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)
    (out / "model" / "keep").write_text("keep", encoding="utf-8")
    result = invoke("run", "--out", str(out), "--data-files", str(toy_corpus), *TINY)
    assert_one_line_error(result, str(out / "model"), "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["model"]


# -- bad input ----------------------------------------------------------------------------------

def test_empty_corpus(tmp_path: Path) -> None:
    """An empty corpus file is a one-line error naming the file."""
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    result = invoke("ingest", "--out", str(tmp_path / "data"), "--data-files", str(empty))
    assert_one_line_error(result, str(empty), "empty")
    assert not (tmp_path / "data").exists()


def test_missing_text_column(tmp_path: Path) -> None:
    """A jsonl corpus without the text column is a one-line error naming the columns it has."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"body": f"line {i}", "id": i}) + "\n"
                              for i in range(30)), encoding="utf-8")
    result = invoke("-q", "ingest", "--out", str(tmp_path / "data"), "--data-files", str(corpus))
    assert_one_line_error(result, "'text'", "body", "--text-column")
    assert not (tmp_path / "data").exists()


def test_missing_corpus_file(tmp_path: Path) -> None:
    """A corpus path that does not exist is a one-line error."""
    result = invoke("ingest", "--out", str(tmp_path / "data"), "--data-files",
                    str(tmp_path / "nope.txt"))
    assert_one_line_error(result, "nope.txt")


def test_ingest_out_not_empty(toy_corpus: Path, tmp_path: Path) -> None:
    """ingest refuses a non-empty --out without --overwrite and leaves it alone."""
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("keep", encoding="utf-8")
    result = invoke("-q", "ingest", "--out", str(out), "--data-files", str(toy_corpus))
    assert_one_line_error(result, str(out), "--overwrite")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_train_out_not_empty(toy_data: Path, tmp_path: Path) -> None:
    """train refuses a non-empty --out without --overwrite."""
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "keep.txt").write_text("keep", encoding="utf-8")
    result = invoke("-q", "train", "--data", str(toy_data), "--out", str(out), *TINY)
    assert_one_line_error(result, "--overwrite")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("command", ["score", "rank", "generate"])
def test_model_missing_file(command: str, toy_model: Path, tmp_path: Path) -> None:
    """A model folder with a listed file missing is a one-line error naming the file."""
    folder = tmp_path / "model"
    shutil.copytree(toy_model, folder)
    (folder / "tokenizer.json").unlink()
    args = [command, "--model", str(folder)] + ([] if command == "generate" else ["the cat"])
    assert_one_line_error(invoke(*args), "tokenizer.json", "missing", "pocketlm export")


def test_model_corrupted_file(toy_model: Path, toy_data: Path, tmp_path: Path) -> None:
    """A model folder with a corrupted graph is a one-line error naming the file, for the
    runtime commands and for evaluate."""
    folder = tmp_path / "model"
    shutil.copytree(toy_model, folder)
    flip_byte(folder / "step.onnx")
    result = invoke("score", "--model", str(folder), "the cat")
    assert_one_line_error(result, "step.onnx", "corrupted")
    result = invoke("evaluate", "--model", str(folder), "--data", str(toy_data),
                    "--batch-size", "2")
    assert_one_line_error(result, "step.onnx", "corrupted")


def test_model_not_found(tmp_path: Path) -> None:
    """A --model path that does not exist is a one-line error naming the command to run."""
    assert_one_line_error(invoke("rank", "--model", str(tmp_path / "nope"), "a", "b"),
                          "no such folder", "pocketlm export")


def test_checkpoint_is_not_a_model(toy_checkpoint: Path) -> None:
    """Passing a checkpoint folder as --model says which kind was expected."""
    assert_one_line_error(invoke("score", "--model", str(toy_checkpoint), "a"), "'model'")


def test_bad_option_values(toy_model: Path) -> None:
    """Out-of-range options are refused by click before anything runs."""
    for args in (["generate", "--model", str(toy_model), "--top-p", "0"],
                 ["generate", "--model", str(toy_model), "--temperature", "-1"],
                 ["score", "--model", str(toy_model), "--precision", "fp16", "a"],
                 ["score", "a"]):
        result = invoke(*args)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "Error" in result.output


def test_evaluate_vocabulary_mismatch(toy_model: Path, tmp_path: Path, toy_corpus: Path) -> None:
    """Evaluating a model on a data folder with another vocabulary is a one-line error."""
    other = tmp_path / "other"
    ok("-q", "ingest", "--out", str(other), "--data-files", str(toy_corpus), "--vocab-size", "10")
    result = invoke("evaluate", "--model", str(toy_model), "--data", str(other),
                    "--batch-size", "2")
    assert_one_line_error(result, "vocabulary")


# -- no torch for the runtime commands ----------------------------------------------------------

_NO_TORCH_CLI = BLOCK_TRAINING_STACK + """
from pocketlm.runtime.cli import main

model = sys.argv[1]
codes = []
for argv in (["score", "--model", model, "--json", "the cat sees the ball ."],
             ["rank", "--model", model, "--json", "ball the", "the ball"],
             ["generate", "--model", model, "--seed", "3", "--json"],
             ["score", "--model", model, "--precision", "int8", "the cat"],
             ["--help"]):
    sys.argv = ["pocketlm", *argv]
    try:
        main()
    except SystemExit as exc:
        codes.append(exc.code)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "datasets"))
print(json.dumps({"codes": codes, "attempts": attempts, "loaded": loaded}))
"""


def test_runtime_commands_do_not_import_torch(toy_model: Path) -> None:
    """`pocketlm score|rank|generate` work in a process where torch, datasets, safetensors and
    onnx cannot be imported, and never try to import them."""
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH_CLI, str(toy_model)],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result == {"codes": [0, 0, 0, 0, 0], "attempts": [], "loaded": []}
    assert json.loads(lines[0])["sentence"] == "the cat sees the ball ."
    assert [r["rank"] for r in json.loads(lines[1])] == [1, 2]
    assert "generated" in json.loads(lines[2])
