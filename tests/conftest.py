"""Tests run on the CPU with 8 fake devices (set before JAX initializes)."""

import os
import pathlib

os.environ["JAX_PLATFORMS"] = "cpu"
flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=8".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def shared_data():
    """The real recordings, `../shared/data` from the project's root (may be absent)."""
    return (ROOT / ".." / "shared" / "data").resolve()


def load_config(name: str, variant: str | None = None):
    """The packaged config `name` with `variant`s, loaded as the command line loads it."""
    from ahms_fm import config_utils

    return config_utils.load(f"{name}:{variant}" if variant else name)


assert jax.device_count() == 8, "tests expect 8 fake CPU devices"
