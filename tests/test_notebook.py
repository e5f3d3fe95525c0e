"""The Colab notebook (notebooks/embeddings.ipynb), executed headless from nothing: it
pretrains a tiny model, embeds its dataset, maps the participants, runs the probes and
embeds a raw recording. So it cannot rot."""

import json
import os
import re
import sys

import nbformat
import pytest
from conftest import ROOT
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOK = ROOT / "notebooks" / "embeddings.ipynb"
KERNEL = "ahms_fm_test"


def _tagged(nb, tag):
    (cell,) = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    return cell


def _text(cell) -> str:
    """Everything a code cell showed: streams, results and displays (text forms)."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        data = out.get("data", {})
        parts += [data.get(k, "") for k in ("text/plain", "text/markdown", "text/html")]
    return "\n".join(parts)


def _images(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def _kernel_manager(tmp_path) -> KernelManager:
    """A kernel of this very interpreter (the venv's), whatever kernels the machine has:
    a kernel spec written into `tmp_path` and the only one the manager can see. The
    kernel runs JAX on one CPU device (conftest's 8 fake devices only slow it down)."""
    flags = re.sub(
        r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", "")
    ).strip()
    env = {
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": flags,
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
    }
    write_kernel_spec(
        tmp_path / "kernels" / KERNEL, overrides={"display_name": "ahms_fm test", "env": env}
    )
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)
    assert km.kernel_spec.argv[0] == sys.executable
    return km


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook run against a tiny PPG run it pretrains itself (2 steps, 60
    participants: enough for the probes), with its outputs."""
    tmp = tmp_path_factory.mktemp("notebook")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = {
        "CHECKPOINT": str(tmp / "run"),  # absent: the notebook pretrains it
        "TRAIN_CONFIG": "configs/ppg.py:tiny",
        "TRAIN_OVERRIDES": {
            "data.data_dir": str(tmp / "datasets"),
            "data.participants": 60,
            "num_steps": 2,
            "checkpoint_every_steps": 2,
            "eval_every_steps": 2,
        },
        "PROBE_OVERRIDES": {"n_boot": 50},
        "TARGETS": "age,age>50,sex,bmi,hypertension",
    }
    cell = _tagged(nb, "parameters")  # papermill-style injection: later assignments win
    cell.source += "\n\n# Injected by tests/test_notebook.py\n" + "\n".join(
        f"{k} = {v!r}" for k, v in params.items()
    )
    client = NotebookClient(
        nb,
        km=_kernel_manager(tmp),
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_RUNTIME_DIR", str(tmp / "runtime"))  # the connection file
        try:
            client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
        finally:
            nbformat.write(nb, tmp / NOTEBOOK.name)  # as far as it ran, to look at
    return nb, tmp


def test_notebook_runs_from_nothing_to_the_probe_table(executed):
    nb, tmp = executed
    assert (tmp / "run" / "checkpoints").is_dir()  # pretrained by the notebook
    assert not any(
        out.get("output_type") == "error"
        for c in nb.cells
        if c.cell_type == "code"
        for out in c.outputs
    )
    assert _images(_tagged(nb, "map")) == 1
    table = _text(_tagged(nb, "probes"))
    for row in (
        "| age | embedding | crossfit |",
        "| age | random_init |",
        "| hypertension | demographic |",
        "| sex | handcrafted |",
    ):
        assert row in table, row
    rep = json.loads((tmp / "run" / "probe" / "report.json").read_text())
    assert rep["which"] == "teacher" and rep["probe"]["n_boot"] == 50
    assert _images(_tagged(nb, "results")) == 3  # summary, ROC curves, predicted vs true
    raw = _text(_tagged(nb, "raw"))
    assert "at 100 Hz -> 3 windows" in raw and "embeddings (" in raw


def test_notebook_is_clean_and_portable():
    """Committed without outputs, parameters in one tagged cell, no local paths."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    assert "google.colab" in code[1].source and "REPO_URL" in code[1].source
    source = "\n".join(c.source for c in nb.cells)
    assert not re.search(r"['\"](/work|/home|/Users|/tmp|[A-Z]:\\)", source)
