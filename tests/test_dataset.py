"""Segment datasets: splits by participant, the record -> participant index, atomic writes."""

import numpy as np
import pytest

from ahms_fm.data import dataset as D
from ahms_fm.data import write as W
from ahms_fm.data.preprocess import ModalitySpec
from ahms_fm.data.recording import DataError

SPEC = ModalitySpec("ppg", 8.0, 16.0, 2, (0.0, 0.0))  # 128 x 2: small records


def toy_source(n_participants=30, name="toy", fail_at=None):
    """Participant i has i % 5 segments; segment k of participant i holds i in channel 0
    and k in channel 1 (exact in float16), so every record says where it came from.
    Its third window of each participant with >= 3 segments is rejected as 'flat'."""
    ids = [f"p{i:02d}" for i in range(n_participants)]
    labels = {p: {"age": 20.0 + i, "sex": i % 2} for i, p in enumerate(ids)}

    def segments(wanted):
        for pid in reversed(wanted):  # any order: keys restore participant order
            i = int(pid[1:])
            if fail_at is not None and i == fail_at:
                raise RuntimeError("source broke mid-way")
            n = i % 5
            value = np.stack([np.full(n, i), np.arange(n)], axis=1).astype(np.float32)
            reason = np.array(["" if k != 2 else "flat" for k in range(n)], dtype="<U10")
            yield D.SegmentBatch(
                participant=[pid] * n,
                recording=[f"{pid}/rec"] * n,
                segment=np.arange(n),
                offset_s=16.0 * np.arange(n),
                start_time=1.6e9 + 16.0 * np.arange(n),
                signal=np.broadcast_to(value[:, None, :], (n, 128, 2)),
                heart_rate=np.full(n, 60.0),
                quality=np.full(n, 0.9),
                reason=reason,
                too_short=int(n == 0),
            )

    return D.Source(name, "toy dataset for tests", labels, segments)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return W.build(toy_source(), SPEC, tmp_path_factory.mktemp("data"))


def test_assign_splits_is_deterministic_by_participant():
    ids = [f"id{i}" for i in range(1000)]
    a = D.assign_splits(ids)
    assert a == D.assign_splits(list(reversed(ids)))
    counts = {s: sum(v == s for v in a.values()) for s in D.SPLITS}
    # Binomial around 80/10/10: within 3 sd of 1,000 participants' expected counts.
    assert abs(counts["train"] - 800) < 38 and abs(counts["test"] - 100) < 29
    for n in range(3, 12):
        assert set(D.assign_splits(ids[:n]).values()) == set(D.SPLITS)


def test_adding_participants_moves_no_one():
    """The audit's case: +100 and +500 participants to 1,000 moved 5 and 13 people."""
    ids = [f"s{i:07d}" for i in range(1500)]
    base = D.assign_splits(ids[:1000])
    for n in (1100, 1500):
        grown = D.assign_splits(ids[:n])
        assert [p for p in base if grown[p] != base[p]] == []
    # Removing people moves no one either (e.g. a participant withdrawn from a study).
    fewer = D.assign_splits(ids[1:1000:2])
    assert all(fewer[p] == base[p] for p in fewer)


def test_records_ranges_and_labels(built):
    meta = D.load_metadata(built)
    table = {row["participant"]: row for row in meta["participants"]}
    assert len(table) == 30 and table["p07"]["age"] == 27.0
    seen = {}
    for split in D.SPLITS:
        sp = D.load_split(built, split)
        assert sp.spec == SPEC
        owners = sp.participant_of_record
        for r in range(len(sp)):
            rec = sp.records[r]
            assert rec["signal"].shape == (128, 2) and rec["signal"].dtype == np.float16
            i, k = int(rec["signal"][0, 0]), int(rec["signal"][0, 1])
            assert rec["participant_index"] == owners[r] == i
            assert rec["participant"].decode() == f"p{i:02d}" and rec["segment"] == k
            assert rec["start_time"] == 1.6e9 + 16.0 * k
            assert table[f"p{i:02d}"]["split"] == split
            seen.setdefault(i, set()).add(split)
    assert all(len(s) == 1 for s in seen.values())  # no participant in two splits
    kept = sum(min(i % 5, 2) + max(i % 5 - 3, 0) for i in range(30))
    assert sum(len(D.load_split(built, s)) for s in D.SPLITS) == kept
    summary = meta["summary"]
    assert summary["segments_kept"] == kept
    assert summary["rejected"]["flat"] == sum(i % 5 >= 3 for i in range(30))
    assert summary["rejected"]["too_short"] == sum(i % 5 == 0 for i in range(30))


def test_interrupted_build_leaves_no_dataset(tmp_path):
    with pytest.raises(RuntimeError, match="mid-way"):
        W.build(toy_source(name="broken", fail_at=13), SPEC, tmp_path)
    with pytest.raises(FileNotFoundError, match="no prepared dataset 'broken'"):
        D.dataset_dir(tmp_path, "broken")
    assert not list((tmp_path / "broken").iterdir())  # no temporary folder left either
    path = W.build(toy_source(name="broken"), SPEC, tmp_path)  # a clean rerun completes
    assert D.dataset_dir(tmp_path, "broken") == path


def test_unknown_split_and_missing_dataset(built, tmp_path):
    with pytest.raises(ValueError, match="unknown split"):
        D.load_split(built, "dev")
    with pytest.raises(FileNotFoundError, match="not a prepared dataset"):
        D.load_split(tmp_path, "train")


def test_recording_source_skips_or_stops_on_a_bad_file(tmp_path):
    from ahms_fm.data.preprocess import QualitySpec
    from ahms_fm.data.recording import Recording
    from ahms_fm.data.sources import recording_source

    spec = ModalitySpec("ppg", 64.0, 10.0, 1, (0.5, 8.0))
    t = np.arange(64 * 35) / 64.0

    def load(pid):
        if pid == "bad":
            raise DataError(tmp_path / "bad.csv", "row 17: 'abc' is not a number")
        return [Recording(pid, f"{pid}-1", np.sin(2 * np.pi * 1.2 * t), 64.0, f"{pid}.csv")]

    def reader(on_error):
        def recordings(wanted, errors):
            for p in sorted(wanted):
                try:
                    yield from load(p)
                except DataError as e:  # the readers' skip policy
                    if on_error == "raise":
                        raise
                    errors.append((e.path, e.problem))

        return recordings

    ids = {p: {} for p in ["bad", *(f"ok{i}" for i in range(29))]}
    src = recording_source("skip_ds", "", ids, reader("skip"), spec, QualitySpec(), on_error="skip")
    path = W.build(src, spec, tmp_path)
    meta = D.load_metadata(path)
    errors = meta["summary"]["errors"]
    assert errors == [[str(tmp_path / "bad.csv"), "row 17: 'abc' is not a number"]]
    assert meta["summary"]["participants_with_segments"] == 29  # everyone else is there
    src = recording_source(
        "stop_ds", "", ids, reader("raise"), spec, QualitySpec(), on_error="raise"
    )
    with pytest.raises(DataError, match=r"bad\.csv: row 17"):
        W.build(src, spec, tmp_path)
    with pytest.raises(FileNotFoundError):
        D.dataset_dir(tmp_path, "stop_ds")


def test_many_shards_keep_record_order(tmp_path):
    path = W.build(toy_source(name="sharded"), SPEC, tmp_path, shard_bytes=4_000)
    sp = D.load_split(path, "train")
    assert len(sp.files) > 5 and all(f.endswith(f"-of-{len(sp.files):05d}") for f in sp.files)
    for r in range(len(sp)):
        assert int(sp.records[r]["signal"][0, 0]) == sp.participant_of_record[r]
