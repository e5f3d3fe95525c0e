"""Config validation: once, where a config starts being used, naming each bad key."""

import pytest
from conftest import load_config

from ahms_fm import config_utils, train
from ahms_fm.config_utils import ConfigError
from ahms_fm.ingest import ingest


@pytest.mark.parametrize("module", ["ppg", "ecg"])
@pytest.mark.parametrize(
    "variant",
    [None, "runlocal", "tiny", "study", "demo", "segment_level", "no_koleo", "simclr", "byol"],
)
def test_every_shipped_config_is_valid(module, variant):
    config_utils.validate(load_config(module, variant))


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("checkpoint_every_steps", 0, "checkpoint_every_steps must be a positive integer, got 0"),
        ("num_steps", -5, "num_steps must be a positive integer, got -5"),
        ("loss.temperature", 0.0, "loss.temperature must be positive, got 0.0"),
        ("loss.temperature", -0.1, "loss.temperature must be positive"),
        ("teacher.momentum", 1.5, "teacher.momentum must be between 0 and 1"),
        ("loss.positives", "record", "loss.positives must be 'participant' or 'segment'"),
    ],
)
def test_training_refuses_a_bad_value_before_doing_anything(key, value, words, tmp_path):
    """Before: checkpoint_every_steps=0 died with ZeroDivisionError after step 1,
    num_steps=-5 exited 0 doing nothing, temperature <= 0 was caught only as a NaN."""
    config = load_config("ppg", "tiny")
    section, _, name = key.rpartition(".")
    (config[section] if section else config)[name] = value
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        train.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written


def test_every_problem_is_named_at_once_and_ingestion_checks_too(tmp_path):
    config = load_config("ppg", "tiny")
    config.augment.cut_out.p = 1.5
    config.data.on_error = "ignore"
    with pytest.raises(ConfigError) as raised:
        ingest(config, progress=False)
    text = str(raised.value)
    assert "augment.cut_out.p must be a probability in [0, 1], got 1.5" in text
    assert "data.on_error must be 'raise' or 'skip', got 'ignore'" in text


def test_segment_length_is_the_same_in_the_config_and_the_modality_spec():
    """Before: int() in the config and round() in the spec (28 vs 29 at 100 Hz x 0.29 s)."""
    from ahms_fm import config_utils
    from ahms_fm.data.preprocess import ModalitySpec

    for rate, seconds, want in (
        (100.0, 0.29, 29),
        (64.0, 60.0, 3840),
        (300.0, 0.0050, 2),
        (128.0, 30.0, 3840),
    ):
        config = config_utils.load(
            "ecg", [f"input.sample_rate={rate}", f"input.window_seconds={seconds}"]
        )
        assert config.input.segment_length == want
        assert ModalitySpec.from_config(config).segment_length == want
