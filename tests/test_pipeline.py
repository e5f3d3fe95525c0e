"""The Grain pair pipeline: who is paired with whom, epochs, shards, resume, workers."""

from collections import Counter

import numpy as np
import pytest
from test_dataset import SPEC, toy_source

from ahms_fm.data import dataset as D
from ahms_fm.data import write as W
from ahms_fm.data.pipeline import pair_pipeline


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    path = W.build(toy_source(60, name="toy_pairs"), SPEC, tmp_path_factory.mktemp("d"))
    return D.load_split(path, "train")


def ids(view):
    """(participant, segment) written into every toy record."""
    return view[:, 0, 0].astype(int), view[:, 0, 1].astype(int)


def take(pipeline, n):
    it = iter(pipeline)
    return [next(it) for _ in range(n)]


def test_participant_level_pairs_are_two_segments_of_one_participant(train):
    for batch in take(pair_pipeline(train, global_batch=8, seed=0), 20):
        pa, sa = ids(batch["view_a"])
        pb, sb = ids(batch["view_b"])
        np.testing.assert_array_equal(pa, pb)
        np.testing.assert_array_equal(batch["participant"], pa)
        assert np.all(sa != sb)
        assert batch["view_a"].shape == (8, 128, 2) and batch["view_a"].dtype == np.float16


def test_segment_level_pairs_are_the_same_segment(train):
    for batch in take(pair_pipeline(train, global_batch=8, seed=0, positives="segment"), 5):
        np.testing.assert_array_equal(batch["view_a"], batch["view_b"])


def test_single_segment_participants_are_skipped_and_counted(train):
    ranges = train.grouped[1]
    counts = ranges[:, 2]
    p = pair_pipeline(train, global_batch=1, seed=0, num_epochs=1)
    assert p.skipped["participants_single_segment"] == int(np.sum(counts == 1)) > 0
    assert p.eligible == int(counts[counts >= 2].sum())
    singles = set(ranges[counts == 1, 0])
    seen = [tuple(x[0] for x in ids(b["view_a"])) for b in p]
    assert len(seen) == p.eligible  # each eligible segment once per epoch as the anchor
    assert len(set(seen)) == len(seen) and not {s[0] for s in seen} & singles
    by_participant = pair_pipeline(
        train, global_batch=1, seed=0, num_epochs=1, sample_by="participant"
    )
    visits = Counter(int(b["participant"][0]) for b in by_participant)
    assert set(visits.values()) == {1} and len(visits) == int(np.sum(counts >= 2))


def test_shuffle_by_seed_and_a_new_order_each_epoch(train):
    def order(seed, n):
        return [
            tuple(ids(b["view_a"])[0])
            for b in take(pair_pipeline(train, global_batch=1, seed=seed), n)
        ]

    eligible = pair_pipeline(train, global_batch=1, seed=0).eligible
    a, b = order(0, 2 * eligible), order(1, eligible)
    assert a == order(0, 2 * eligible) and a[:eligible] != b
    assert a[:eligible] != a[eligible:] and sorted(a[:eligible]) == sorted(a[eligible:])


def test_processes_read_disjoint_shards_of_the_global_batch(train):
    eligible = pair_pipeline(train, global_batch=1, seed=0).eligible
    shards = [
        pair_pipeline(train, global_batch=4, seed=3, process_index=i, process_count=2, num_epochs=1)
        for i in range(2)
    ]
    assert all(s.per_process_batch == 2 for s in shards)
    anchors = [{tuple(x) for b in s for x in zip(*ids(b["view_a"]), strict=True)} for s in shards]
    assert not anchors[0] & anchors[1]
    assert len(anchors[0] | anchors[1]) >= eligible - 3  # all but the dropped remainder
    with pytest.raises(ValueError, match="not divisible"):
        pair_pipeline(train, global_batch=5, seed=0, process_count=2)


def test_restored_iterator_continues_exactly(train):
    it = iter(pair_pipeline(train, global_batch=4, seed=7))
    for _ in range(5):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(4)]
    again = iter(pair_pipeline(train, global_batch=4, seed=7))
    again.set_state(state)
    for want in expected:
        got = next(again)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def test_worker_processes_give_the_same_stream(train):
    want = take(pair_pipeline(train, global_batch=4, seed=5), 6)
    got = take(pair_pipeline(train, global_batch=4, seed=5, num_workers=2), 6)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(w["view_a"], g["view_a"])
        np.testing.assert_array_equal(w["view_b"], g["view_b"])
