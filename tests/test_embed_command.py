"""`ahms-fm embed` on a real folder (the shared CinC 2017 records) and on generated 12-lead
MATLAB exams, read back and checked against `embed()`; and `embed()`'s warnings.

One tiny ECG run (2 steps, 4 s windows, short recordings padded up to half a window) is
trained once for the module.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import load_config

from ahms_fm import train
from ahms_fm.data.readers import ByoSpec, scan_folder
from ahms_fm.data.recording import DataError
from ahms_fm.evaluation import embed_command, embeddings, parquet

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
FLAT_WFDB = {
    "pattern": "*.hea",
    "participant_regex": r"(?P<participant>[^/]+)\.hea$",
    "participants_csv": None,
}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    config = load_config("ecg", "tiny")
    config.data.data_dir = str(tmp_path_factory.mktemp("data"))
    config.num_steps = 2
    config.model.stages = ((4, 3, 1, 1), (7, 5, 1, 2))
    config.preprocess.max_pad_fraction = 0.5
    workdir = tmp_path_factory.mktemp("run")
    train.train_and_evaluate(config, workdir)
    return embeddings.load_encoder(workdir)


def ecg_exam(seconds, rate, bpm=72.0, seed=0):
    """[12, time] mV: every lead the same spike train (R spikes, T waves), scaled."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = np.zeros_like(t)
    for b in np.arange(0.3, seconds, 60.0 / bpm):
        x += np.exp(-0.5 * ((t - b) / 0.01) ** 2)
        x += 0.3 * np.exp(-0.5 * ((t - b - 0.25) / 0.05) ** 2)
    return np.stack([(1 + k / 10) * x + 0.02 * rng.normal(size=t.size) for k in range(12)])


def _cli(tmp_path, encoder, *args) -> Path:
    out = tmp_path / "out.parquet"
    assert (
        embed_command.run(
            [
                "ahms-fm embed",
                "--checkpoint",
                encoder.source,
                "--out",
                str(out),
                "--batch_size",
                "64",
                *args,
            ]
        )
        == 0
    )
    return out


def _assert_matches_embed(out, encoder, recordings):
    table, z, meta = parquet.read_embeddings(out)
    ref = embeddings.embed(encoder, recordings, batch_size=64)
    assert meta["modality_spec"] == encoder.spec.to_dict() and meta["step"] == encoder.step
    assert len(table) == int(ref.kept.sum()) == meta["summary"]["kept"]
    np.testing.assert_allclose(z, ref.embeddings, atol=1e-5)
    names = [recordings[i].recording for i in ref.recording[ref.kept]]
    assert list(table["recording"]) == names
    np.testing.assert_array_equal(table["offset_s"], ref.offset_s[ref.kept])
    return table, meta


def test_embed_a_flat_folder_of_wfdb_records(tmp_path, encoder, shared_data):
    root = shared_data / "cinc2017"
    spec = tmp_path / "cinc.json"
    spec.write_text(json.dumps(FLAT_WFDB))
    out = _cli(tmp_path, encoder, "--folder", str(root), "--spec", str(spec))
    recs = list(scan_folder(root, FLAT_WFDB))
    table, meta = _assert_matches_embed(out, encoder, recs)
    assert meta["summary"]["recordings"] == len(recs) == 201
    assert set(table["participant"]) <= {r.participant for r in recs}
    assert meta["folder"] == str(root.resolve())


def test_embed_a_folder_of_12_lead_mat_exams(tmp_path, encoder):
    """Channels-first MATLAB v5 exams at 400 Hz, key feats, lead I picked by name; a 3 s exam
    is padded (half a 4 s window at most), a 1 s one is too short."""
    import scipy.io

    root = tmp_path / "exams"
    root.mkdir()
    for i, seconds in enumerate([10.0, 9.0, 3.0, 1.0]):
        scipy.io.savemat(root / f"exam{i}.mat", {"feats": ecg_exam(seconds, 400.0, seed=i)})
    spec = {
        "pattern": "*.mat",
        "participant_regex": r"(?P<participant>exam\d)",
        "sample_rate": 400.0,
        "key": "feats",
        "channel_names": LEADS,
        "channels": ["I"],
        "participants_csv": None,
    }
    (root / "spec.json").write_text(json.dumps(spec))
    out = _cli(tmp_path, encoder, "--folder", str(root), "--spec", str(root / "spec.json"))
    recs = list(scan_folder(root, ByoSpec.from_dict(spec)))
    assert [r.signal.shape for r in recs] == [(4000, 1), (3600, 1), (1200, 1), (400, 1)]
    table, meta = _assert_matches_embed(out, encoder, recs)
    padded = table[table["recording"] == "exam2"]
    assert len(padded) == 1 and padded["pad_s"].iloc[0] == pytest.approx(1.0, abs=0.01)
    assert (table[table["recording"] != "exam2"]["pad_s"] == 0).all()
    assert meta["summary"]["too_short"] == ["exam3"]
    assert "exam3" in embed_command.format_summary(meta["summary"], out)


def test_embed_warns_about_a_wrong_rate_a_transpose_and_nothing_embedded(encoder):
    exam = ecg_exam(20.0, 500.0)[0]
    with pytest.warns(
        UserWarning,
        match=r"declared 64 Hz: implausible.*At 500 Hz they would "
        r"be 7\d bpm",
    ):
        embeddings.embed(encoder, exam[:, None], sample_rate=64.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the right rate: no warning
        out = embeddings.embed(encoder, exam[:, None], sample_rate=500.0)
    assert out.kept.any()
    with pytest.raises(DataError, match=r"looks like \[channels, time\].*transpose"):
        embeddings.embed(encoder, exam[None, :], sample_rate=500.0)
    with pytest.warns(UserWarning, match="nothing was embedded.*shorter than one 4 s window"):
        embeddings.embed(encoder, exam[:500, None], sample_rate=500.0)  # 1 s
    one = embeddings.embed(encoder, list(exam), sample_rate=500.0)  # a list of numbers
    assert one.names == ["signals"] and one.kept.any()
    with pytest.raises(ValueError, match=r"signals\[1\] has dtype <U"):
        embeddings.embed(encoder, [exam[:, None], np.array(["a", "b"])], sample_rate=500.0)
