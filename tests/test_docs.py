"""The docs cannot silently fall behind the code: every config key is documented."""

from conftest import ROOT, load_config


def _keys(c, prefix=""):
    for k, v in c.items():
        if hasattr(v, "items") and not isinstance(v, dict):
            yield from _keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def test_every_config_key_is_in_the_configs_reference():
    text = (ROOT / "docs" / "configs.md").read_text()
    missing = [
        k for name in ("ppg", "ecg") for k in _keys(load_config(name)) if f"`{k}`" not in text
    ]
    assert not missing, f"docs/configs.md lacks {missing}"
