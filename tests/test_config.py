import pytest

from marketcast.config import Config, config_to_toml, load_config
from marketcast.errors import ConfigError


def test_precedence_defaults_file_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\nlookback = 100\nunits = 32\n[train]\nlearning_rate = 1\n')
    config = load_config(path, {"model.units": 16, "model.layers": None})
    assert config.model.lookback == 100  # file
    assert config.model.units == 16  # flag beats file
    assert config.model.layers == Config().model.layers  # default
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)


def test_round_trip_through_toml(tmp_path):
    config = load_config(None, {"data.features": "close,volume", "data.ticker": "AAPL"})
    path = tmp_path / "saved.toml"
    path.write_text(config_to_toml(config))
    assert load_config(path) == config
    assert config.data.features == ("close", "volume")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model]\nwindow = 5\n", "unknown setting 'window'"),
        ("[modle]\nlookback = 5\n", r"unknown section \[modle\]"),
        ("[model]\nlookback = 'long'\n", "lookback: expected int, got 'long'"),
        ("[model]\nlookback = true\n", "expected int, got True"),
        ("[model]\ndropout = 1.5\n", "model.dropout must be in"),
        ("[model]\ntarget_transform = 'diff'\n", "target_transform must be one of"),
        ("[train]\nbatch_size = 0\n", "batch_size must be at least 1"),
        ("[split]\nval_fraction = 0.5\ntest_fraction = 0.5\n", "leave days for training"),
        ("model = 3\n", r"\[model\] must be a table"),
        ("[model\n", "not valid TOML"),
        ("[strategy]\nrule = 'short_only'\n", "strategy.rule must be one of long_flat, "
                                               "long_short, both"),
        ("[strategy]\ncost_bps = -1\n", "strategy.cost_bps must be 0 or more"),
        ("[strategy]\ncost_bps = nan\n", "strategy.cost_bps must be 0 or more"),
        ("[strategy]\nthreshold = 'high'\n", "threshold: expected float, got 'high'"),
        ("[strategy]\nthreshold = -0.01\n", "strategy.threshold must be a forecast return"),
        ("[output]\nname = '../../x'\n", r"--name \(output.name\) '../../x' must be a plain"),
        ("[output]\nname = '/abs'\n", "must be a plain folder name"),
        (f"[output]\nname = '{'n' * 101}'\n", "at most 100 printable characters"),
    ],
)
def test_bad_config_files(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_strategy_section_from_a_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[strategy]\nrule = 'long_short'\nthreshold = 0\ncost_bps = 10\n")
    strategy = load_config(path, {"strategy.cost_bps": 2.5}).strategy
    assert (strategy.rule, strategy.threshold, strategy.cost_bps) == ("long_short", 0.0, 2.5)
    assert isinstance(strategy.threshold, float)
    assert (Config().strategy.rule, Config().strategy.cost_bps) == ("both", 5.0)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")


def test_example_configs_load():
    from pathlib import Path

    examples = sorted((Path(__file__).parents[1] / "examples").glob("*.toml"))
    assert len(examples) >= 2
    for path in examples:
        load_config(path)


def test_train_workers_are_never_silently_ignored(tmp_path):
    from marketcast import api
    from marketcast.config import DataConfig, TrainConfig

    config = Config(data=DataConfig(source=str(tmp_path / "long.csv"), tickers=("A", "B")),
                    train=TrainConfig(workers=2))
    with pytest.raises(ConfigError, match="a backtest refits in this process"):
        api.backtest(config=config, write=False)
    with pytest.raises(ConfigError, match="call marketcast.scale.train.run_global"):
        api.run_global(config)


@pytest.mark.parametrize("key, value, message", [
    ("lr_scaling", "cubic", "train.lr_scaling must be one of none, sqrt, linear"),
    ("warmup_steps", -1, "train.warmup_steps must be 0 or more")])
def test_large_batch_settings_are_checked(key, value, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_dict({"train": {key: value}})
