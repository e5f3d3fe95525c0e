"""Array files (NumPy, MATLAB v4/v5/v7.3) and channel selection in every format, on files
written here by the formats' own libraries; labels from WFDB headers on the shared CinC
2021 sample."""

from pathlib import Path

import numpy as np
import pytest

from ahms_fm.data import readers
from ahms_fm.data.readers import ByoSpec, DataError, read_file, scan_folder

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
CINC2021 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cinc2021_12lead"
EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


def twelve_leads(seconds=8.0, rate=400.0):
    """[12, time] in mV: lead k a sine of (k + 1) Hz with amplitude (k + 1) / 10."""
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([(k + 1) / 10 * np.sin(2 * np.pi * (k + 1) * t) for k in range(12)])


@pytest.mark.parametrize("fmt", ["4", "5"])
def test_mat_v4_v5_named_key_channels_first(tmp_path, fmt):
    import scipy.io

    x = twelve_leads()
    path = tmp_path / "exam.mat"
    scipy.io.savemat(path, {"feats": x, "other": np.ones((3, 3)), "fs": 400.0}, format=fmt)
    rec = read_file(path, channels=["I", "V2"], key="feats", channel_names=LEADS)
    assert rec.sample_rate == 400.0 and rec.channels == ("I", "V2")  # rate from "fs"
    np.testing.assert_allclose(rec.signal, x[[0, 7]].T)  # auto: time on the longer axis
    rec = read_file(path, channels=[1], key="feats", orientation="channels_first")
    np.testing.assert_allclose(rec.signal[:, 0], x[1])
    with pytest.raises(DataError, match=r"holds arrays \['feats', 'other'\]"):
        read_file(path)  # two arrays, neither called signal/val/data
    with pytest.raises(DataError, match="no channel 'V7'"):
        read_file(path, channels=["V7"], key="feats", channel_names=LEADS)
    with pytest.raises(DataError, match="no names: select by index"):
        read_file(path, channels=["I"], key="feats")
    with pytest.raises(DataError, match="sample_rate=500 Hz was given"):
        read_file(path, sample_rate=500, key="feats")


def test_mat_v73_through_h5py(tmp_path):
    import h5py

    x = twelve_leads(seconds=4.0)
    path = tmp_path / "exam73.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        # MATLAB writes column-major: an [12, n] MATLAB array is an [n, 12] HDF5 dataset.
        f["val"] = x.T
        f["sampling_rate"] = np.array([[400.0]])
    with open(path, "r+b") as f:  # MATLAB's header text in the user block
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Tue Dec  1 2026")
    rec = read_file(path, channels=["aVR"], channel_names=LEADS)
    assert rec.sample_rate == 400.0
    np.testing.assert_allclose(rec.signal[:, 0], x[3])


def test_numpy_channels_by_index_and_name(tmp_path):
    x = twelve_leads(seconds=2.0).T  # [time, 12]
    np.save(tmp_path / "a.npy", x)
    rec = read_file(tmp_path / "a.npy", sample_rate=400, channels=[0, -1])
    np.testing.assert_allclose(rec.signal, x[:, [0, 11]])
    rec = read_file(tmp_path / "a.npy", sample_rate=400, channels="V6", channel_names=LEADS)
    np.testing.assert_allclose(rec.signal[:, 0], x[:, 11])
    rec = read_file(tmp_path / "a.npy", sample_rate=400, channels=LEADS)  # names all columns
    assert rec.channels == tuple(LEADS)
    np.savez(tmp_path / "b.npz", ecg=x.T, sample_rate=400.0)
    rec = read_file(tmp_path / "b.npz", channels=[2])  # one array besides the rate
    np.testing.assert_allclose(rec.signal[:, 0], x[:, 2])
    with pytest.raises(DataError, match="out of range"):
        read_file(tmp_path / "a.npy", sample_rate=400, channels=[12])
    with pytest.raises(DataError, match="key"):
        read_file(tmp_path / "a.npy", sample_rate=400, key="ecg")
    with pytest.raises(DataError, match="array files"):  # array options on a CSV
        (tmp_path / "c.csv").write_text("time,ppg\n0,1\n0.5,2\n1.0,3\n")
        read_file(tmp_path / "c.csv", key="ppg")


def test_csv_and_wfdb_channels_by_index(tmp_path):
    import wfdb

    (tmp_path / "c.csv").write_text(
        "time,red,green\n" + "\n".join(f"{i / 10},{i},{-i}" for i in range(20))
    )
    rec = read_file(tmp_path / "c.csv", channels=[1])
    assert rec.channels == ("green",) and rec.signal[3, 0] == -3
    x = twelve_leads(seconds=2.0, rate=500.0).T
    wfdb.wrsamp(
        "r",
        fs=500,
        units=["mV"] * 12,
        sig_name=LEADS,
        p_signal=x,
        fmt=["16"] * 12,
        write_dir=str(tmp_path),
    )
    rec = read_file(tmp_path / "r.hea", channels=[0, "V1"])
    assert rec.channels == ("I", "V1")
    np.testing.assert_allclose(rec.signal, x[:, [0, 6]], atol=2e-3)


def test_a_folder_of_12_lead_mat_exams(tmp_path):
    """The issue's user: MATLAB exams (key feats, 12 x N in mV at 400 Hz), labels in a table
    whose first column is pandas' unnamed index (refused with what to do)."""
    import scipy.io

    root = tmp_path / "exams"
    root.mkdir()
    for i in range(4):
        scipy.io.savemat(root / f"exam{i}.mat", {"feats": twelve_leads(seconds=8.0 + i)})
    (root / "meta.csv").write_text(
        ",exam,age,sex\n"
        + "\n".join(f"{i},exam{i},{40 + i},{'M' if i % 2 else 'F'}" for i in range(4))
    )
    spec = ByoSpec.from_json(EXAMPLES / "mat_12lead.json")  # the docs' example
    with pytest.raises(DataError, match="unnamed index; write the table with"):
        list(scan_folder(root, spec))
    (root / "meta.csv").write_text(
        "exam,age,sex\n" + "\n".join(f"exam{i},{40 + i},{'M' if i % 2 else 'F'}" for i in range(4))
    )
    recs = list(scan_folder(root, spec))
    assert [r.participant for r in recs] == [f"exam{i}" for i in range(4)]
    assert all(r.signal.shape == ((8 + i) * 400, 1) for i, r in enumerate(recs))
    np.testing.assert_allclose(recs[0].signal[:, 0], twelve_leads()[0])


def test_labels_from_wfdb_headers():
    spec = ByoSpec.from_json(EXAMPLES / "wfdb_12lead_flat.json")  # the docs' example
    table = readers.header_table(CINC2021, spec)
    assert len(table) == 50
    # E07500.hea: "# Age: 78", "# Sex: Male", "# Rx: Unknown" (missing).
    assert table["E07500"]["age"] == 78 and table["E07500"]["sex"] == "Male"
    assert table["E07500"]["rx"] is None
    assert {row["sex"] for row in table.values()} <= {"Male", "Female", None}
    rec = next(scan_folder(CINC2021, spec))
    assert rec.channels == ("I",) and rec.sample_rate == 500.0 and len(rec.signal) == 5000


def test_the_docs_examples_are_valid_specs_shown_in_the_docs():
    text = (EXAMPLES.parent / "data.md").read_text()
    paths = sorted(EXAMPLES.glob("*.json"))
    assert len(paths) == 3
    for path in paths:
        spec = ByoSpec.from_json(path)  # raises on an unknown key or a bad value
        assert f"examples/{path.name}" in text and spec.pattern in text


def test_a_400_hz_mat_exam_becomes_128_hz_windows(tmp_path):
    """Lead I of a channels-first 400 Hz exam (a 1 Hz sine), through the ECG preprocessing:
    30 s at 128 Hz, the same sine sampled at 128 Hz (z-scored; the band keeps 1 Hz)."""
    import scipy.io

    from ahms_fm.data.preprocess import ModalitySpec, segment_array

    scipy.io.savemat(tmp_path / "e.mat", {"feats": twelve_leads(seconds=30.0)})
    rec = read_file(
        tmp_path / "e.mat", sample_rate=400.0, key="feats", channel_names=LEADS, channels=["I"]
    )
    spec = ModalitySpec("ecg", 128.0, 30.0, 1, (0.5, 40.0))
    s = segment_array(rec.signal, rec.sample_rate, spec, None)
    assert s.signal.shape == (1, 3840, 1)
    want = np.sin(2 * np.pi * np.arange(3840) / 128.0)
    middle = slice(640, 3200)  # away from the filter's ends
    assert np.corrcoef(s.signal[0, middle, 0], want[middle])[0, 1] > 0.999


def test_the_cinc2021_sample_ingests_padded_with_header_labels(tmp_path):
    """The issue's 50 exams: lead I, age and sex from the headers, 10 s exams kept in 30 s
    windows under the pad policy."""
    from conftest import load_config

    from ahms_fm.data import dataset
    from ahms_fm.ingest import ingest

    config = load_config("ecg")
    config.data.dataset = "cinc2021"
    config.data.source_dir = str(CINC2021)
    config.data.byo_spec = str(EXAMPLES / "wfdb_12lead_flat.json")
    config.data.data_dir = str(tmp_path)
    config.preprocess.max_pad_fraction = 0.7
    path = ingest(config, progress=False)
    meta = dataset.load_metadata(path)
    assert meta["summary"]["segments_kept"] == 50 and meta["summary"]["participants"] == 50
    row = next(r for r in meta["participants"] if r["participant"] == "E07500")
    assert row["age"] == 78 and row["sex"] == "Male"
    rec = dataset.load_split(path, "train").records[0]
    assert rec["pad_s"] == pytest.approx(20.0, abs=0.01)
