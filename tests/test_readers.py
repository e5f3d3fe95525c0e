"""Readers: the real datasets in ../shared/data, corrupted inputs, and format round-trips."""

import collections
import contextlib
import csv
import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ahms_fm.data import readers
from ahms_fm.data.public import STRESS_PHASES, read_cinc2017, read_ppg_bp, read_stress_predict
from ahms_fm.data.readers import (
    ByoSpec,
    DataError,
    read_e4_extras,
    read_e4_session,
    read_file,
    read_participants_csv,
    scan_folder,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def dataset(name: str) -> Path:
    path = (DATA / name).resolve()
    if not path.is_dir():
        pytest.skip(f"dataset folder {path} is absent")
    return path


@contextlib.contextmanager
def raises_naming(path, match=None):
    """pytest.raises(DataError) whose message names `path` (and matches `match`)."""
    with pytest.raises(DataError, match=match) as info:
        yield info
    assert Path(path).name in str(info.value), str(info.value)


# ---------------------------------------------------------------------------------------------
# Real datasets
# ---------------------------------------------------------------------------------------------


def test_cinc2017():
    root = dataset("cinc2017")
    recs, table = read_cinc2017(root)
    recs = list(recs)
    with open(root / "REFERENCE.csv", newline="") as f:
        expected = dict(csv.reader(f))
    assert len(recs) == len(table) == len(expected) == 201
    assert collections.Counter(v["rhythm"] for v in table.values()) == collections.Counter(
        expected.values()
    )
    assert collections.Counter(v["rhythm"] for v in table.values()) == {
        "N": 100,
        "A": 34,
        "O": 47,
        "~": 20,
    }
    assert sum(v["af"] for v in table.values()) == 34
    for r in recs:
        assert r.sample_rate == 300 and r.channels == ("ecg",) and r.signal.dtype == np.float64
        assert 9 <= r.duration_s <= 61
        assert r.participant == r.recording and r.participant in table
        assert np.abs(r.signal).max() < 20  # mV, not ADC counts
    first = recs[0]
    assert first.recording == "A00001"
    np.testing.assert_allclose(first.signal[:3, 0], [-0.127, -0.162, -0.197])  # val / 1000
    assert first.start_time == dt.datetime(2014, 5, 8, 5, 5, 15, tzinfo=dt.timezone.utc).timestamp()


def test_ppg_bp():
    root = dataset("ppg_bp")
    recs, table = read_ppg_bp(root)
    recs = list(recs)
    assert len(table) == 219 and len(recs) == 657
    per_subject = collections.Counter(r.participant for r in recs)
    assert set(per_subject) == set(table) and set(per_subject.values()) == {3}
    lengths = {r.recording: r.signal.shape[0] for r in recs}
    assert {k for k, n in lengths.items() if n != 2100} == {"231_1", "231_2"}
    assert lengths["231_1"] == lengths["231_2"] == 4200
    assert all(r.sample_rate == 1000 and r.channels == ("ppg",) for r in recs)
    assert {v["sex"] for v in table.values()} == {0, 1}
    ages = [v["age"] for v in table.values()]
    bmis = [v["bmi"] for v in table.values()]
    assert 20 <= min(ages) and max(ages) <= 90
    assert 14 <= min(bmis) and max(bmis) <= 40
    assert {v["hypertension_stage"] for v in table.values()} == {
        "Normal",
        "Prehypertension",
        "Stage 1 hypertension",
        "Stage 2 hypertension",
    }
    assert all(v["hypertension"] == (v["hypertension_stage"] != "Normal") for v in table.values())
    assert 0 < sum(v["diabetes"] for v in table.values()) < 219
    s2 = table["2"]  # first spreadsheet row: Female, 45, BMI 27.27, Stage 2
    assert (s2["sex"], s2["age"], s2["hypertension"], s2["diabetes"]) == (0, 45, True, False)
    assert s2["bmi"] == pytest.approx(27.268, abs=1e-3)


def test_stress_predict():
    root = dataset("stress_predict")
    recs, labels = read_stress_predict(root)
    assert not isinstance(recs, list)  # lazy
    assert len(labels) == 35
    count = 0
    for r in recs:
        count += 1
        lab = labels[r.participant]
        assert r.sample_rate == 64 and r.accel_rate == 32 and r.channels == ("bvp",)
        assert r.accel.shape[1] == 3
        assert abs(r.accel.shape[0] / 32 - r.duration_s) < 5
        assert 0.9 < np.linalg.norm(r.accel, axis=1).mean() < 1.1  # g, not 1/64 g
        start = dt.datetime.fromtimestamp(r.start_time, dt.timezone.utc)
        assert (
            dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
            < start
            < dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
        )
        assert (r.signal[:11, 0] == 0).all()  # warm-up zeros are kept
        assert lab["session_date"] == start.date().isoformat()
        # every (corrected) tag falls inside the recording; tasks overlap the recording
        assert all(r.start_time <= t <= r.start_time + r.duration_s for t in lab["tags"])
        names = [p[0] for p in lab["phases"]]
        assert set(STRESS_PHASES) <= set(names)
        assert all(s <= e for _, s, e in lab["phases"])
        for name, s, e in lab["phases"]:
            if name in STRESS_PHASES:
                assert r.start_time <= s and e <= r.start_time + r.duration_s + 120
        assert 50 < lab["mean_hr"] < 120
    assert count == 35
    # the 12-hour-clock tags of S17 were moved 12 h later
    assert labels["S17"]["tags"] != sorted(labels["S17"]["tags_raw"])
    assert 1645415164 in labels["S17"]["tags_raw"] and 1645415164 + 43200 in labels["S17"]["tags"]
    # Stroop test of S05 logged 09:23-09:29 (UTC in February), tagged 09:23:19
    stroop = next(p for p in labels["S05"]["phases"] if p[0] == "stroop_test")
    assert stroop[1] == dt.datetime(2022, 2, 14, 9, 23, tzinfo=dt.timezone.utc).timestamp()
    assert abs(labels["S05"]["tags"][0] - stroop[1]) < 60


def test_e4_folder_via_read_file_and_extras():
    folder = dataset("stress_predict") / "Raw_data" / "S01"
    rec = read_file(folder)
    assert rec.participant == "S01" and rec.signal.shape == (208703, 1)
    extras = read_e4_extras(folder)
    assert extras["hr_rate"] == 1 and extras["hr_start"] == rec.start_time + 10
    assert extras["ibi"].shape[1] == 2 and len(extras["tags"]) == 10


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------


def test_csv_round_trip_with_time_column(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 2))
    t = 1.7e9 + np.arange(500) / 64
    path = tmp_path / "rec.csv"
    with open(path, "w") as f:
        f.write("time,ppg,ecg\n")
        for ti, (a, b) in zip(t, x, strict=True):
            f.write(f"{float(ti)!r},{float(a)!r},{float(b)!r}\n")
    rec = read_file(path, participant="p1")
    assert rec.sample_rate == 64 and rec.channels == ("ppg", "ecg")
    assert rec.participant == "p1" and rec.recording == "rec" and rec.start_time == t[0]
    np.testing.assert_array_equal(rec.signal, x)
    only = read_file(path, channels=["ecg"], sample_rate=64)
    np.testing.assert_array_equal(only.signal[:, 0], x[:, 1])


def test_csv_without_time_needs_rate(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b\n1,2\n3,4.5\n5,6\n")
    rec = read_file(path, sample_rate=100)
    np.testing.assert_array_equal(rec.signal, [[1, 2], [3, 4.5], [5, 6]])
    with raises_naming(path, "no sampling rate"):
        read_file(path)


def test_numpy_round_trip(tmp_path):
    x = np.random.default_rng(1).normal(size=(300, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    rec = read_file(tmp_path / "a.npy", sample_rate=64, channels=["a", "b", "c", "d"])
    np.testing.assert_array_equal(rec.signal, x.astype(np.float64))
    assert rec.channels == ("a", "b", "c", "d")
    np.savez(tmp_path / "b.npz", signal=x, sample_rate=np.float64(64))
    assert read_file(tmp_path / "b.npz").sample_rate == 64
    with raises_naming(tmp_path / "b.npz", "says 64"):
        read_file(tmp_path / "b.npz", sample_rate=128)


def test_parquet_round_trip(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.random.default_rng(2).normal(size=(256, 2))
    table = pa.table({"time": np.arange(256) / 128.0, "red": x[:, 0], "ir": x[:, 1]})
    pq.write_table(table, tmp_path / "r.parquet")
    rec = read_file(tmp_path / "r.parquet")
    assert rec.sample_rate == 128 and rec.channels == ("red", "ir")
    np.testing.assert_array_equal(rec.signal, x)
    pq.write_table(table.append_column("note", pa.array(["x"] * 256)), tmp_path / "s.parquet")
    assert read_file(tmp_path / "s.parquet", channels=["ir"]).channels == ("ir",)
    with raises_naming("s.parquet", "'note' has type string"):
        read_file(tmp_path / "s.parquet")
    x[5, 0] = np.nan
    pq.write_table(pa.table({"red": x[:, 0]}), tmp_path / "nan.parquet")
    with raises_naming("nan.parquet", "row 5"):
        read_file(tmp_path / "nan.parquet", sample_rate=128)


def test_edf_round_trip(tmp_path):
    import pyedflib.highlevel as hl

    x = np.random.default_rng(3).uniform(-100, 100, size=(2, 1280))
    headers = [hl.make_signal_header(name, "uV", 128, -200, 200) for name in ("ppg", "ecg")]
    path = tmp_path / "r.edf"
    hl.write_edf(str(path), x, headers)
    rec = read_file(path)
    assert rec.sample_rate == 128 and rec.channels == ("ppg", "ecg")
    np.testing.assert_allclose(rec.signal, x.T, atol=400 / 65535)  # 16-bit quantization
    one = read_file(path, channels=["ecg"])
    np.testing.assert_allclose(one.signal[:, 0], x[1], atol=400 / 65535)


def test_edf_channels_at_different_rates(tmp_path):
    import pyedflib.highlevel as hl

    headers = [
        hl.make_signal_header("a", sample_frequency=128),
        hl.make_signal_header("b", sample_frequency=64),
    ]
    path = tmp_path / "mixed.edf"
    hl.write_edf(str(path), [np.zeros(1280), np.zeros(640)], headers)
    with raises_naming(path, "different sampling rates"):
        read_file(path)
    assert read_file(path, channels=["b"]).sample_rate == 64


def test_wfdb_round_trip(tmp_path):
    import wfdb

    x = np.random.default_rng(4).normal(size=(1000, 2))
    wfdb.wrsamp(
        "rec",
        fs=250,
        units=["mV", "mV"],
        sig_name=["I", "II"],
        p_signal=x,
        fmt=["16", "16"],
        write_dir=str(tmp_path),
    )
    rec = read_file(tmp_path / "rec.hea")
    assert rec.sample_rate == 250 and rec.channels == ("I", "II")
    gains = wfdb.rdheader(str(tmp_path / "rec")).adc_gain
    np.testing.assert_allclose(rec.signal, x, atol=1 / min(gains))
    assert read_file(tmp_path / "rec.dat", channels=["II"]).channels == ("II",)


def write_cinc_like(folder: Path, name: str, val: np.ndarray) -> Path:
    """A record in the CinC 2017 layout: date-first header + MATLAB v4 'val' int16."""
    import scipy.io

    scipy.io.savemat(folder / f"{name}.mat", {"val": val.astype(np.int16)[None]}, format="4")
    hea = folder / f"{name}.hea"
    hea.write_text(
        f"{name} 1 300 {val.size} 2014-05-08 05:05:15 \n"
        f"{name}.mat 16+24 1000/mV 16 0 {int(val[0])} 0 0 ECG \n"
    )
    return hea


def test_wfdb_date_first_quirk(tmp_path):
    val = np.arange(-1500, 1500, dtype=np.int16)
    hea = write_cinc_like(tmp_path, "B00001", val)
    rec = read_file(hea)
    np.testing.assert_array_equal(rec.signal[:, 0], val / 1000)  # mV
    assert rec.sample_rate == 300
    assert rec.start_time == dt.datetime(2014, 5, 8, 5, 5, 15, tzinfo=dt.timezone.utc).timestamp()


def test_e4_synthetic_round_trip(tmp_path):
    folder = tmp_path / "P7"
    folder.mkdir()
    bvp = np.r_[np.zeros(11), np.sin(np.arange(640 - 11) / 5)]
    acc = np.tile([[0, 0, 64], [1, -2, 63]], (160, 1))
    (folder / "BVP.csv").write_text(
        "1650000000.00\n64.000000\n" + "".join(f"{v:.2f}\n" for v in bvp)
    )
    (folder / "ACC.csv").write_text(
        "1650000000.000000, 1650000000.000000, 1650000000.000000\n32.000000, 32.000000, "
        "32.000000\n" + "".join(f"{a},{b},{c}\n" for a, b, c in acc)
    )
    rec = read_e4_session(folder)
    assert rec.participant == "P7" and rec.start_time == 1650000000
    np.testing.assert_allclose(rec.signal[:, 0], np.round(bvp, 2))
    np.testing.assert_array_equal(rec.accel, acc / 64)
    assert read_e4_extras(folder)["tags"] == []


# ---------------------------------------------------------------------------------------------
# Corrupted inputs: DataError naming the file
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("time,ppg\n0,1\n0.01,nan\n0.02,3\n", "line 3.*NaN"),
        ("time,ppg\n0,1\n0.01,\n0.02,3\n", "line 3.*NaN"),
        ("time,ppg\n0,1\n0.01,inf\n0.02,3\n", "infinite"),
        ("time,ppg\n0,1\n0.01,1.2.3\n0.02,3\n", "line 3.*'1.2.3'"),
        ("time,ppg\n0,1\n0.01,2\n0.05,3\n0.06,3\n", "not uniform"),
        ("time,ppg\n0,1\n0.01,2\n0.01,3\n", "does not increase"),
        ("0,1\n0.01,2\n", "no header"),
        ("time,ppg\n", "no samples"),
        ("time,ppg\n0,1\n0.01,2,7\n", "cannot read"),
    ],
)
def test_csv_corrupt(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with raises_naming(path, match):
        read_file(path)


def test_csv_rate_disagrees_with_time_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("time,ppg\n0,1\n0.5,2\n1.0,3\n")
    with raises_naming(path, "says 2 Hz"):
        read_file(path, sample_rate=64)


def test_empty_files(tmp_path):
    for name in ("e.csv", "e.npy", "e.edf", "e.hea", "e.parquet"):
        (tmp_path / name).write_bytes(b"")
        with raises_naming(tmp_path / name, "empty"):
            read_file(tmp_path / name)


def test_garbage_headers_and_files(tmp_path):
    (tmp_path / "g.hea").write_text("%% this is not a header \x07\n")
    with raises_naming(tmp_path / "g.hea"):
        read_file(tmp_path / "g.hea")
    (tmp_path / "g.edf").write_bytes(np.random.default_rng(0).bytes(3000))
    with raises_naming(tmp_path / "g.edf", "not EDF"):
        read_file(tmp_path / "g.edf")
    (tmp_path / "g.parquet").write_bytes(b"PAR1 nonsense")
    with raises_naming(tmp_path / "g.parquet"):
        read_file(tmp_path / "g.parquet")
    (tmp_path / "g.xyz").write_text("1")
    with raises_naming(tmp_path / "g.xyz", "unsupported"):
        read_file(tmp_path / "g.xyz")
    with raises_naming(tmp_path / "missing.csv", "no such file"):
        read_file(tmp_path / "missing.csv")


def test_numpy_problems(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((100, 2)))
    with raises_naming(tmp_path / "a.npy", "no sampling rate"):
        read_file(tmp_path / "a.npy")
    x = np.ones((100, 2))
    x[7, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with raises_naming(tmp_path / "nan.npy", "sample 7"):
        read_file(tmp_path / "nan.npy", sample_rate=64)
    np.save(tmp_path / "t.npy", np.ones((4, 3840)))
    with raises_naming(tmp_path / "t.npy", "transpose"):
        read_file(tmp_path / "t.npy", sample_rate=64, orientation="time_first")
    assert read_file(tmp_path / "t.npy", sample_rate=64).signal.shape == (3840, 4)  # auto
    (tmp_path / "cut.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:300])
    with raises_naming(tmp_path / "cut.npy"):
        read_file(tmp_path / "cut.npy", sample_rate=64)


def test_truncated_wfdb_data(tmp_path):
    import wfdb

    wfdb.wrsamp(
        "rec",
        fs=250,
        units=["mV"],
        sig_name=["I"],
        p_signal=np.ones((1000, 1)),
        fmt=["16"],
        write_dir=str(tmp_path),
    )
    dat = tmp_path / "rec.dat"
    dat.write_bytes(dat.read_bytes()[:1001])
    with raises_naming(tmp_path / "rec.hea"):
        read_file(tmp_path / "rec.hea")
    hea = write_cinc_like(tmp_path, "B00002", np.arange(3000, dtype=np.int16))
    mat = tmp_path / "B00002.mat"
    mat.write_bytes(mat.read_bytes()[:2000])
    with raises_naming(hea):
        read_file(hea)


def test_truncated_real_cinc_mat(tmp_path):
    root = dataset("cinc2017")
    shutil.copy(root / "A00001.hea", tmp_path)
    (tmp_path / "A00001.mat").write_bytes((root / "A00001.mat").read_bytes()[:10000])
    with raises_naming(tmp_path / "A00001.hea"):
        read_file(tmp_path / "A00001.hea")
    (tmp_path / "A00001.mat").unlink()
    with raises_naming(tmp_path / "A00001.mat", "missing"):
        read_file(tmp_path / "A00001.hea")


def make_e4(folder: Path, bvp_rate="64.000000", acc_rows=320, acc_rates=("32.0",) * 3, bvp_tail=""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "BVP.csv").write_text(f"1650000000\n{bvp_rate}\n" + "1.5\n" * 640 + bvp_tail)
    (folder / "ACC.csv").write_text(
        "1650000000, 1650000000, 1650000000\n" + ", ".join(acc_rates) + "\n" + "0,0,64\n" * acc_rows
    )
    return folder


@pytest.mark.parametrize(
    ("kwargs", "file", "match"),
    [
        ({"bvp_rate": "128.000000"}, "BVP.csv", "128 Hz"),
        ({"acc_rates": ("32.0", "32.0", "16.0")}, "ACC.csv", "disagree"),
        ({"acc_rows": 100}, "P1", "mismatched lengths"),
        ({"bvp_tail": "abc\n"}, "BVP.csv", "'abc'"),
        ({"bvp_tail": "nan\n"}, "BVP.csv", "line 643"),
    ],
)
def test_e4_corrupt(tmp_path, kwargs, file, match):
    folder = make_e4(tmp_path / "P1", **kwargs)
    with raises_naming(folder / file if file != "P1" else folder, match):
        read_e4_session(folder)


def test_e4_truncated_and_empty(tmp_path):
    folder = make_e4(tmp_path / "P1")
    acc = folder / "ACC.csv"
    acc.write_text(acc.read_text() + "1,2\n")  # last row cut short
    with raises_naming(acc, "NaN"):
        read_e4_session(folder)
    acc.write_text("1650000000, 1650000000, 1650000000\n")
    with raises_naming(acc, "truncated"):
        read_e4_session(folder)
    acc.write_text("")
    with raises_naming(acc, "empty"):
        read_e4_session(folder)
    with raises_naming(tmp_path / "nothing", "not an Empatica"):
        (tmp_path / "nothing").mkdir()
        read_file(tmp_path / "nothing")


def test_dataset_skip_errors(tmp_path):
    """A broken PPG-BP file and a broken CinC record are reported by name under 'skip'."""
    import openpyxl

    root = tmp_path / "ppg"
    (root / "0_subject").mkdir(parents=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Cardiovascular Dataset Information File"])
    ws.append(
        [
            "Num.",
            "subject_ID",
            "Sex(M/F)",
            "Age(year)",
            "Height(cm)",
            "Weight(kg)",
            "Systolic Blood Pressure(mmHg)",
            "Diastolic Blood Pressure(mmHg)",
            "Heart Rate(b/m)",
            "BMI(kg/m^2)",
            "Hypertension",
            "Diabetes",
            "cerebral infarction",
            "cerebrovascular disease",
        ]
    )
    ws.append([1, 2, "Female", 45, 152, 63, 161, 89, 97, 27.3, "Normal", None, None, None])
    ws.append(
        [
            2,
            3,
            "Male",
            50,
            170,
            70,
            120,
            80,
            70,
            24.2,
            "Stage 1 hypertension",
            "Type 2 Diabetes",
            None,
            None,
        ]
    )
    wb.save(root / "PPG-BP dataset.xlsx")
    for sid in (2, 3):
        for n in (1, 2, 3):
            (root / "0_subject" / f"{sid}_{n}.txt").write_text("1800.0\t" * 2100)
    (root / "0_subject" / "3_2.txt").write_text("1800.0\t" * 2000)  # truncated
    (root / "0_subject" / "9_1.txt").write_text("1800.0\t" * 2100)  # not in spreadsheet
    errors = []
    recs, table = read_ppg_bp(root, on_error="skip", errors=errors)
    assert len(list(recs)) == 5
    assert table["3"]["sex"] == 1 and table["3"]["diabetes"] and not table["2"]["hypertension"]
    assert sorted(Path(p).name for p, _ in errors) == ["3_2.txt", "9_1.txt"]
    (root / "0_subject" / "9_1.txt").unlink()
    with raises_naming("3_2.txt", "2000 samples"):
        list(read_ppg_bp(root)[0])

    cinc = tmp_path / "cinc"
    cinc.mkdir()
    write_cinc_like(cinc, "A1", np.arange(3000, dtype=np.int16))
    write_cinc_like(cinc, "A2", np.arange(3000, dtype=np.int16))
    (cinc / "A2.mat").write_bytes((cinc / "A2.mat").read_bytes()[:500])
    (cinc / "REFERENCE.csv").write_text("A1,N\nA2,A\nA3,O\n")
    errors = []
    recs, table = read_cinc2017(cinc, on_error="skip", errors=errors)
    assert [r.recording for r in recs] == ["A1"] and table["A2"]["af"]
    assert sorted(Path(p).name for p, _ in errors) == ["A2.hea", "A3.hea"]
    (cinc / "REFERENCE.csv").write_text("A1,N\nA2,X\n")
    with raises_naming("REFERENCE.csv", "line 2"):
        read_cinc2017(cinc)
    with pytest.raises(ValueError, match="errors"):
        read_cinc2017(cinc, on_error="skip")


# ---------------------------------------------------------------------------------------------
# Participant tables and bring-your-own cohorts
# ---------------------------------------------------------------------------------------------


def test_read_participants_csv(tmp_path):
    path = tmp_path / "participants.csv"
    path.write_text(
        "participant,age,bmi,smoker,sex,site\np01,34,22.5,yes,0,A\np02,,31,No,1,\n007,61,NA,,1,B\n"
    )
    table = read_participants_csv(path)
    assert list(table) == ["p01", "p02", "007"]
    assert table["p01"] == {"age": 34, "bmi": 22.5, "smoker": True, "sex": 0, "site": "A"}
    assert np.isnan(table["p02"]["age"]) and table["p02"]["smoker"] is False
    assert table["p02"]["site"] is None and table["007"]["smoker"] is None
    assert np.isnan(table["007"]["bmi"])
    path.write_text("participant,age\np01,3\np02,4\np01,5\n")
    with raises_naming(path, "duplicate participant id 'p01'"):
        read_participants_csv(path)
    with raises_naming(path, "no id column 'subject'"):
        read_participants_csv(path, id_column="subject")


def make_cohort(root: Path):
    rng = np.random.default_rng(5)
    (root / "participants.csv").write_text("participant,age,female\np01,30,yes\np02,55,no\n")
    for pid in ("p01", "p02", "p03"):
        (root / pid).mkdir(parents=True)
        np.save(root / pid / "day1.npy", rng.normal(size=(640, 1)))
    (root / "p01" / "day2.csv").write_text("ppg\n" + "1\n" * 640)
    bad = rng.normal(size=(640, 1))
    bad[3] = np.nan
    np.save(root / "p02" / "day2.npy", bad)


def test_scan_folder(tmp_path):
    make_cohort(tmp_path)
    spec = ByoSpec(pattern="*/*.*", sample_rate=64)
    errors = []
    recs = list(scan_folder(tmp_path, spec, on_error="skip", errors=errors))
    assert [(r.participant, r.recording) for r in recs] == [
        ("p01", "p01/day1"),
        ("p01", "p01/day2"),
        ("p02", "p02/day1"),
    ]
    assert all(r.sample_rate == 64 for r in recs)
    problems = {Path(p).relative_to(tmp_path).as_posix(): why for p, why in errors}
    assert set(problems) == {"p02/day2.npy", "p03/day1.npy"}
    assert "not in participants.csv" in problems["p03/day1.npy"]
    with raises_naming("day2.npy", "sample 3"):
        list(scan_folder(tmp_path, spec))


def test_scan_folder_regex_and_spec_loading(tmp_path):
    for name in ("sub-01_run1.csv", "sub-02_run1.csv", "participants.csv"):
        (tmp_path / name).write_text("time,ppg\n0,1\n0.5,2\n1,3\n")
    (tmp_path / "participants.csv").write_text("id,age\n01,40\n02,50\n")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(
        json.dumps(
            {
                "pattern": "*.csv",
                "participant_regex": r"sub-(?P<participant>\d+)_",
                "id_column": "id",
            }
        )
    )
    spec = ByoSpec.from_json(spec_file)
    recs = list(scan_folder(tmp_path, spec))
    assert [r.participant for r in recs] == ["01", "02"] and recs[0].sample_rate == 2
    with pytest.raises(ValueError, match="unknown ByoSpec keys"):
        ByoSpec.from_dict({"pattern": "*.csv", "rate": 64})
    with pytest.raises(ValueError, match="participant"):
        ByoSpec(participant_regex=r"sub-(\d+)")
    with raises_naming(tmp_path, "no recordings match"):
        scan_folder(tmp_path, {"pattern": "*.edf", "participants_csv": None})
    with raises_naming("sub-01_run1.csv", "cohort root"):
        list(
            scan_folder(
                tmp_path, {"pattern": "sub-*.csv", "participants_csv": None, "sample_rate": 2}
            )
        )


def test_scan_folder_e4_exports(tmp_path):
    make_e4(tmp_path / "S1")
    make_e4(tmp_path / "S2")
    recs = list(scan_folder(tmp_path, {"pattern": "S*", "participants_csv": None}))
    assert [r.participant for r in recs] == ["S1", "S2"]
    assert readers.E4_BVP_RATE == recs[0].sample_rate


def test_one_file_per_recording_and_links_reported(tmp_path):
    """Before: a WFDB record's .hea and .dat both matched by */* were two copies of one
    recording; rec.csv beside rec.npy likewise; broken links were passed over silently."""
    import wfdb

    (tmp_path / "p1").mkdir()
    x = np.random.default_rng(4).normal(size=(1000, 1))
    wfdb.wrsamp(
        "rec",
        fs=250,
        units=["mV"],
        sig_name=["I"],
        p_signal=x,
        fmt=["16"],
        write_dir=str(tmp_path / "p1"),
    )
    (tmp_path / "p1" / "gone.csv").symlink_to(tmp_path / "nowhere.csv")
    spec = {"pattern": "*/*", "participants_csv": None}
    errors = []
    recs = list(scan_folder(tmp_path, spec, on_error="skip", errors=errors))
    assert [(r.recording, len(r.signal)) for r in recs] == [("p1/rec", 1000)]
    assert [(Path(p).name, why) for p, why in errors] == [
        ("gone.csv", "a symbolic link to nothing (or to itself)")
    ]
    with raises_naming("gone.csv", "symbolic link"):
        list(scan_folder(tmp_path, spec))

    (tmp_path / "p1" / "gone.csv").unlink()
    np.save(tmp_path / "p1" / "day.npy", x)
    (tmp_path / "p1" / "day.csv").write_text("ppg\n" + "1\n" * 640)
    with raises_naming(tmp_path, r"recording 'p1/day' is given by 2 files \(day.csv, day.npy\)"):
        scan_folder(tmp_path, {**spec, "sample_rate": 64})
    (tmp_path / "p1" / "day.csv").unlink()
    (tmp_path / "p2").mkdir()
    (tmp_path / "p2" / "copy.npy").symlink_to(tmp_path / "p1" / "day.npy")
    with raises_naming("copy.npy", "is the same file as"):
        scan_folder(tmp_path, {**spec, "sample_rate": 64})


def test_a_csv_cut_off_mid_row_is_warned_and_its_cut_row_dropped(tmp_path, caplog):
    """Before: the cut value was kept as if whole, and nothing said the file was cut."""
    rows = [f"{i / 64:.6f},{np.sin(i / 10):.6f}" for i in range(640)]
    whole = tmp_path / "whole.csv"
    whole.write_text("time,ppg\n" + "\n".join(rows))  # no final newline: fine
    assert len(read_file(whole).signal) == 640 and "cut off" not in caplog.text
    cut = tmp_path / "cut.csv"
    cut.write_text("time,ppg\n" + "\n".join(rows[:300]) + "\n" + rows[300][:-4])
    rec = read_file(cut)
    assert len(rec.signal) == 300
    np.testing.assert_allclose(rec.signal[-1, 0], float(rows[299].split(",")[1]))
    assert "cut.csv: the file ends in the middle of line 302" in caplog.text
    (tmp_path / "short.csv").write_text("time,ppg\n" + "\n".join(rows[:300]) + "\n0.5")
    assert len(read_file(tmp_path / "short.csv").signal) == 300  # a row without its value


def test_an_over_long_cell_is_named_briefly(tmp_path):
    t = np.arange(640) / 64
    path = tmp_path / "long.csv"
    path.write_text(
        "time,ppg\n0," + "1" * 2_000_000 + "\n" + "\n".join(f"{a:.6f},1" for a in t[1:])
    )
    with raises_naming(
        "long.csv",
        r"line 2, column 'ppg': cannot parse '1111.*\(2,000,000 "
        r"characters\) as a number",
    ) as info:
        read_file(path)
    assert len(str(info.value)) < 200 + len(str(path))
