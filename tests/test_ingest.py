"""Ingestion end to end: the real datasets in ../shared/data and the synthetic cohort."""

import collections
import os

import numpy as np
import pytest
from conftest import load_config

from ahms_fm.data import dataset as D
from ahms_fm.data import write as W
from ahms_fm.ingest import format_summary, ingest


def _config(tmp_path, shared_data, name, variant, folder):
    source = shared_data / folder
    if not source.is_dir():
        pytest.skip(f"{source} is absent")
    config = load_config(name, variant)
    config.data.data_dir = str(tmp_path)
    config.data.source_dir = str(source)
    return config


def _check_splits(path):
    """No participant in two splits; the table's split agrees with where records are."""
    meta = D.load_metadata(path)
    split_of = {row["participant_index"]: row["split"] for row in meta["participants"]}
    owners = {}
    for split in D.SPLITS:
        sp = D.load_split(path, split)
        for i in set(sp.participant_of_record.tolist()):
            assert split_of[i] == split and i not in owners
            owners[i] = split
        rows = np.random.default_rng(0).choice(len(sp), size=min(len(sp), 20), replace=False)
        for r in rows:  # records hold what the participant index says
            rec = sp.records[int(r)]
            assert rec["participant_index"] == sp.participant_of_record[r]
            assert np.all(np.isfinite(rec["signal"]))
    return meta


def test_cinc2017(tmp_path, shared_data):
    config = _config(tmp_path, shared_data, "ecg", "cinc2017", "cinc2017")
    path = ingest(config, progress=False)
    meta = _check_splits(path)
    s = meta["summary"]
    # Whole 30 s windows per record, from the headers' first lines (rate, length).
    seconds = [
        int(h.read_text().split()[3]) / int(h.read_text().split()[2])
        for h in sorted((shared_data / "cinc2017").glob("*.hea"))
    ]
    windows = sum(int(x // 30) for x in seconds)
    assert s["participants"] == 201 == len(seconds)
    assert s["rejected"]["too_short"] == sum(x < 30 for x in seconds)
    assert s["segments_kept"] + sum(s["rejected"].values()) - s["rejected"]["too_short"] == windows
    sp = D.load_split(path, "train")
    assert sp.spec.sample_rate == 128.0 and sp.records[0]["signal"].shape == (3840, 1)
    labels = collections.Counter(row["rhythm"] for row in meta["participants"])
    assert labels == {"N": 100, "O": 47, "A": 34, "~": 20}
    assert all(row["af"] == (row["rhythm"] == "A") for row in meta["participants"])
    assert "segments kept: " in format_summary(path)


def test_ppg_bp(tmp_path, shared_data):
    config = _config(tmp_path, shared_data, "ppg", "ppg_bp", "ppg_bp")
    path = ingest(config, progress=False)
    meta = _check_splits(path)
    s = meta["summary"]
    # 219 subjects x 3 files of 2.1 s (two of 4.2 s): one 2 s window each (two for those).
    assert s["participants"] == 219
    assert s["segments_kept"] + sum(s["rejected"].values()) == 657 + 2
    assert s["segments_kept"] > 600
    sp = D.load_split(path, "validation")
    assert sp.records[0]["signal"].shape == (128, 1)
    ages = [row["age"] for row in meta["participants"]]
    assert min(ages) >= 20 and max(ages) <= 90
    assert {row["sex"] for row in meta["participants"]} == {0, 1}


def test_stress_predict(tmp_path, shared_data):
    config = _config(tmp_path, shared_data, "ppg", "stress_predict", "stress_predict")
    path = ingest(config, progress=False)
    meta = _check_splits(path)
    s = meta["summary"]
    assert s["participants"] == 35 == s["participants_with_segments"]
    assert 1_700 < s["segments_kept"] + sum(s["rejected"].values()) < 2_100  # 51-60 min each
    sp = D.load_split(path, "train")
    phases = collections.Counter(sp.records[i]["label"].decode() for i in range(len(sp)))
    assert {"stroop_test", "interview", "hyperventilation", "relax"} <= set(phases)
    rec = sp.records[0]
    assert rec["signal"].shape == (3840, 1) and 1.6e9 < rec["start_time"] < 1.7e9
    # The estimated rate tracks the E4's own heart rate (HR.csv) participant by participant.
    table = {row["participant"]: row["mean_hr"] for row in meta["participants"]}
    rates = collections.defaultdict(list)
    for i in range(len(sp)):
        r = sp.records[i]
        rates[r["participant"].decode()].append(r["heart_rate"])
    est, device = np.array([(np.median(v), table[p]) for p, v in rates.items()]).T
    assert np.corrcoef(est, device)[0, 1] > 0.85 and np.mean(np.abs(est - device)) < 5


def _byo_cohort(root, n=12, corrupt=None):
    """A folder per participant with one 2.5-minute CSV (time, ppg) at 50 Hz, plus labels."""
    rng = np.random.default_rng(0)
    rows = ["participant,age,smoker"]
    for i in range(n):
        pid = f"sub{i:02d}"
        (root / pid).mkdir(parents=True)
        t = np.arange(150 * 50) / 50.0
        x = np.sin(2 * np.pi * (1.0 + 0.02 * i) * t) + 0.05 * rng.normal(size=t.size)
        lines = ["time,ppg"] + [f"{a:.3f},{b:.5f}" for a, b in zip(t, x, strict=True)]
        if pid == corrupt:
            lines[500] = "10.0,nan"
        (root / pid / "day1.csv").write_text("\n".join(lines))
        rows.append(f"{pid},{30 + i},{'yes' if i % 3 == 0 else 'no'}")
    (root / "participants.csv").write_text("\n".join(rows))
    spec = root / "cohort.json"
    spec.write_text('{"pattern": "*/*.csv", "channels": ["ppg"]}')
    return spec


def _byo_config(tmp_path, spec, on_error="raise"):
    config = load_config("ppg", "stress_predict")  # one PPG channel at 64 Hz
    config.data.dataset = "my_cohort"
    config.data.source_dir = str(spec.parent)
    config.data.byo_spec = str(spec)
    config.data.data_dir = str(tmp_path / "datasets")
    config.data.on_error = on_error
    return config


def test_bring_your_own_folder(tmp_path):
    spec = _byo_cohort(tmp_path / "cohort")
    table = tmp_path / "cohort" / "participants.csv"  # one labelled person with no files
    table.write_text(table.read_text() + "\nsub99,71,no")
    path = ingest(_byo_config(tmp_path, spec), progress=False)
    meta = _check_splits(path)
    assert meta["summary"]["participants"] == 13 and meta["summary"]["segments_kept"] == 24
    assert meta["summary"]["no_recordings"] == ["sub99"]
    assert "participants without a recording read: 1 (sub99)" in format_summary(path)
    row = next(r for r in meta["participants"] if r["participant"] == "sub03")
    assert row["age"] == 33 and row["smoker"] is True
    rec = D.load_split(path, "train").records[0]
    assert rec["signal"].shape == (3840, 1)  # resampled from 50 Hz to 64 Hz
    assert abs(rec["heart_rate"] - 60 * (1.0 + 0.02 * rec["participant_index"])) < 1.0


def test_a_corrupt_file_stops_the_run_or_is_skipped_by_name(tmp_path):
    from ahms_fm.data.recording import DataError

    spec = _byo_cohort(tmp_path / "cohort", corrupt="sub04")
    bad = str(tmp_path / "cohort" / "sub04" / "day1.csv")
    with pytest.raises(DataError, match=r"sub04/day1\.csv"):
        ingest(_byo_config(tmp_path, spec, "raise"), progress=False)
    with pytest.raises(FileNotFoundError):  # nothing that looks like a dataset was left
        D.dataset_dir(tmp_path / "datasets", "my_cohort")
    path = ingest(_byo_config(tmp_path, spec, "skip"), progress=False)
    errors = D.load_metadata(path)["summary"]["errors"]
    assert [e[0] for e in errors] == [bad] and "nan" in errors[0][1].lower()
    assert f"{bad}:" in format_summary(path)


def test_a_dataset_built_from_other_inputs_is_refused_not_reused(tmp_path):
    """Before: ingesting again under one name with another source_dir, quality setting or
    channel count returned the old dataset and printed its old summary."""
    spec = _byo_cohort(tmp_path / "cohort")
    config = _byo_config(tmp_path, spec)
    path = ingest(config, progress=False)
    built = (path / D.METADATA).stat().st_mtime_ns
    assert ingest(_byo_config(tmp_path, spec), progress=False) == path  # same inputs: reused
    assert (path / D.METADATA).stat().st_mtime_ns == built

    other = _byo_cohort(tmp_path / "elsewhere", n=8)
    changed = _byo_config(tmp_path, other)
    changed.quality.heart_rate_bpm = (40.0, 200.0)
    with pytest.raises(W.DatasetMismatch) as refused:
        ingest(changed, progress=False)
    text = str(refused.value)
    assert str(path) in text and "--overwrite" in text
    assert "quality.heart_rate_bpm: [30.0, 220.0] -> [40.0, 200.0]" in text
    assert f"source_dir: '{tmp_path / 'cohort'}' -> '{tmp_path / 'elsewhere'}'" in text
    assert ingest(changed, overwrite=True, progress=False) == path  # rebuilt on request
    assert D.load_metadata(path)["summary"]["participants"] == 8


def test_a_killed_builds_folder_is_removed_by_the_next_build(tmp_path):
    import socket
    import subprocess
    import sys

    spec = _byo_cohort(tmp_path / "cohort")
    config = _byo_config(tmp_path, spec)
    parent = tmp_path / "datasets" / "my_cohort"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname().replace(".", "_")
    orphan = parent / f"incomplete.{host}.{dead.pid}.deadbeef.1.0.0"
    running = parent / f"incomplete.{host}.{os.getpid()}.cafef00d.1.0.0"  # alive: kept
    for folder in (orphan, running):
        (folder / "x").mkdir(parents=True)
    ingest(config, progress=False)
    assert not orphan.exists() and running.exists()


def test_a_csv_timed_at_an_odd_rate_is_ingested(tmp_path):
    """Before: a CSV timed at 100.3 Hz stopped the whole run, in raise and in skip mode,
    with a bare 'cannot resample 100.29999977494391 Hz to 64.0 Hz'."""
    spec = _byo_cohort(tmp_path / "cohort", n=4)
    t = np.arange(150 * 100.3) / 100.3
    lines = ["time,ppg"] + [f"{a:.6f},{np.sin(2 * np.pi * 1.1 * a):.5f}" for a in t]
    (tmp_path / "cohort" / "sub01" / "day1.csv").write_text("\n".join(lines))
    path = ingest(_byo_config(tmp_path, spec), progress=False)
    records = [r for s in ("train", "validation", "test") for r in D.load_split(path, s).records]
    meta = D.load_metadata(path)
    index = next(i for i, p in enumerate(meta["participants"]) if p["participant"] == "sub01")
    odd = [r for r in records if r["participant_index"] == index]
    assert len(odd) == 2 and all(abs(r["heart_rate"] - 66.0) < 1.0 for r in odd)


def test_nothing_kept_says_why_by_reason_and_file(tmp_path):
    """Before: 'no segment was kept for split train: all of its 8 participants were
    rejected or unreadable', without the counts already computed or the files skipped."""
    from ahms_fm.data.write import NothingKept

    spec = _byo_cohort(tmp_path / "cohort", corrupt="sub04")
    config = _byo_config(tmp_path, spec, "skip")
    config.input.window_seconds = 200.0  # every 150 s recording is too short
    with pytest.raises(NothingKept) as info:
        ingest(config, progress=False)
    message = str(info.value)
    assert "too_short 9" in message  # the train split's 10 participants, one unreadable
    assert "at least one whole 200 s window" in message and "max_pad_fraction" in message
    assert "files skipped (1)" in message and "sub04/day1.csv" in message
    config.preprocess.max_pad_fraction = 0.3  # 150 s lack 25% of 200 s: padded, kept
    meta = D.load_metadata(ingest(config, progress=False))
    assert meta["summary"]["segments_kept"] == 11
    rec = D.load_split(D.dataset_dir(config.data.data_dir, "my_cohort"), "train").records[0]
    assert rec["pad_s"] == pytest.approx(50.0, abs=0.1)
