"""pipeline/options.py, pipeline/config.py and stages/options.py: options declared once in config
fields, enforced by the configs and generated as click options."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from torch import nn

from pocketlm.export.config import ExportConfig
from pocketlm.pipeline.cells import CELLS, Cell
from pocketlm.pipeline.config import MODEL_FIELDS, PRESETS, TrainConfig, preset
from pocketlm.pipeline.model import ModelConfig
from pocketlm.pipeline.options import check_fields, option_name
from pocketlm.runtime.artifact import PocketLMError
from pocketlm.stages.options import IntList, config_options, pop_config


def _command() -> click.Command:
    @click.command()
    @config_options(ModelConfig, TrainConfig, from_preset=True)
    def show(**kw: object) -> None:
        click.echo(repr(sorted((k, v) for k, v in kw.items() if v is not None)))

    return show


def test_every_field_with_help_is_an_option() -> None:
    """Each model and training field (vocab_size and the nested model aside) is one option."""
    names = {o for p in _command().params for o in p.opts}
    for name in MODEL_FIELDS:
        assert option_name(name) in names
    assert "--vocab-size" not in names and "--model" not in names
    assert {"--batch-size", "--lr", "--ema", "--precision", "--tied", "--tied-tails"} <= names


@pytest.mark.parametrize("config, words", [
    (lambda: TrainConfig.of(lr=0.0), "--lr 0.0 must be > 0"),
    (lambda: TrainConfig.of(ema=1.0), "--ema 1.0 must be in [0.0, 1.0)"),
    (lambda: TrainConfig.of(lr_decay=0.0), "--lr-decay 0.0 must be in (0, 1]"),
    (lambda: TrainConfig.of(cell="transformer"), "unknown cell 'transformer' (--cell)"),
    (lambda: ModelConfig(layers=0), "--layers 0 must be >= 1"),
    (lambda: ExportConfig(tolerance=0.0), "--tolerance 0.0 must be > 0"),
])
def test_limits_are_enforced_in_python(config: object, words: str) -> None:
    with pytest.raises(PocketLMError) as info:
        config()  # type: ignore[operator]
    assert words in str(info.value)


def test_limits_are_enforced_on_the_command_line() -> None:
    runner = CliRunner()
    bad = runner.invoke(_command(), ["--dropout", "1.5"])
    assert bad.exit_code == 2 and "--dropout" in bad.output
    good = runner.invoke(_command(), ["--dropout", "0.5", "--cutoffs", "10,20", "--untied"])
    assert good.exit_code == 0, good.output
    assert "('cutoffs', (10, 20))" in good.output and "('tied', False)" in good.output
    assert "comma-separated" in runner.invoke(_command(), ["--cutoffs", "a,b"]).output


def test_registry_choices_follow_registrations(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cell registered after the options were built is offered and accepted."""
    command = _command()
    assert CliRunner().invoke(command, ["--cell", "mine"]).exit_code == 2
    monkeypatch.setitem(CELLS, "mine", Cell("mine", nn.GRU, ("h",)))
    result = CliRunner().invoke(command, ["--cell", "mine"])
    assert result.exit_code == 0 and "('cell', 'mine')" in result.output
    assert "mine" in CliRunner().invoke(command, ["--help"]).output
    check_fields(ModelConfig(cell="mine"))


def test_flat_fields_round_trip() -> None:
    """Flat fields (command line, checkpoint manifest) build the nested config and come back."""
    config = TrainConfig.of(cell="gru", hidden_size=32, epochs=2, cutoffs=[5, 9])
    assert config.model == ModelConfig(cell="gru", hidden_size=32, cutoffs=(5, 9))
    assert config.epochs == 2
    flat = config.to_dict()
    assert flat["cell"] == "gru" and "model" not in flat and "vocab_size" not in flat
    assert TrainConfig.from_dict({**flat, "unknown": 1}) == config
    assert config.replace(layers=3, lr=1e-3).model.layers == 3
    assert preset("tiny", hidden_size=None, epochs=1) == PRESETS["tiny"].replace(epochs=1)


def test_an_old_flat_config_loads() -> None:
    """A checkpoint config from before tied_tails existed builds with the default."""
    flat = {k: v for k, v in PRESETS["small"].to_dict().items() if k != "tied_tails"}
    assert TrainConfig.from_dict(flat).model.tied_tails is True


def test_model_config_for_a_vocabulary() -> None:
    """input_dropout=None follows --dropout; the vocabulary-dependent checks run with the size."""
    config = TrainConfig.of(dropout=0.3, output="adaptive", cutoffs=(10, 20))
    model = config.model_config(100)
    assert (model.vocab_size, model.input_dropout) == (100, 0.3)
    with pytest.raises(PocketLMError, match="below the vocabulary size 15"):
        config.model_config(15)


def test_pop_config_takes_only_its_fields() -> None:
    kw = {"cell": "gru", "epochs": 3, "other": 1}
    assert pop_config(ModelConfig, kw) == {"cell": "gru"}
    assert kw == {"epochs": 3, "other": 1}
    assert IntList().convert("3,4", None, None) == (3, 4)


def test_export_options_come_from_the_config() -> None:
    """`pocketlm export`'s config options are ExportConfig's fields with help: a value, an
    on/off pair and a switch that is off unless given."""
    @click.command()
    @config_options(ExportConfig)
    def show(**kw: object) -> None:
        click.echo(repr(ExportConfig(**pop_config(ExportConfig, dict(kw)))))

    assert [p.opts for p in show.params] == [["--tolerance"], ["--int8"], ["--ort"]]
    runner = CliRunner()
    assert runner.invoke(show, []).output.strip() == repr(ExportConfig())
    given = runner.invoke(show, ["--tolerance", "1e-5", "--no-int8", "--ort"])
    assert given.output.strip() == repr(ExportConfig(tolerance=1e-5, int8=False, ort=True))
    assert runner.invoke(show, ["--tolerance", "0"]).exit_code == 2
