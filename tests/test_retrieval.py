"""Participant identification across time (evaluation/retrieval.py)."""

import numpy as np
import pandas as pd

from ahms_fm.evaluation import retrieval


def _table(n_people=20, per=9, seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        {"participant_index": p, "recording": f"r{p}", "offset_s": 60.0 * s, "segment": s}
        for p in range(n_people)
        for s in range(per)
    ]
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=seed)  # rows out of time order
    return table.reset_index(drop=True), rng


def test_thirds_take_the_first_and_last_third_in_time_and_skip_single_segments():
    table, _ = _table(n_people=3, per=9)
    table = pd.concat(
        [
            table,
            pd.DataFrame(
                [{"participant_index": 7, "recording": "x", "offset_s": 0.0, "segment": 0}]
            ),
        ],
        ignore_index=True,
    )
    query, gallery = retrieval.thirds(table)
    assert len(query) == len(gallery) == 9  # 3 of 9 each, participant 7 left out
    for q_rows, want in ((query, {0.0, 60.0, 120.0}), (gallery, {360.0, 420.0, 480.0})):
        got = table.loc[q_rows]
        assert set(got.participant_index) == {0, 1, 2}
        for _, person in got.groupby("participant_index"):
            assert set(person.offset_s) == want


def test_identity_features_find_everybody_and_noise_is_at_chance():
    table, rng = _table(n_people=40, per=9)
    who = table.participant_index.to_numpy()
    identity = rng.normal(size=(40, 16))[who] + 0.1 * rng.normal(size=(len(who), 16))
    # A feature that drifts over the recording, shared by everybody, must not matter.
    drift = np.stack([table.offset_s.to_numpy()] * 4, axis=1) * 100.0
    records = {
        r["features"]: r
        for r in retrieval.evaluate(
            table,
            {
                "identity": np.concatenate([identity, drift], axis=1),
                "noise": rng.normal(size=(len(who), 16)),
            },
            n_boot=200,
        )
    }
    assert records["identity"]["top1"] > 0.95
    assert records["identity"]["participants"] == 40 and records["identity"]["queries"] == 120
    noise = records["noise"]
    assert noise["chance"] == 1 / 40
    assert noise["top1"] < 0.15 and noise["low"] <= noise["top1"] <= noise["high"]
    lines = retrieval.markdown(list(records.values()))
    assert any(line.startswith("| identity | ") for line in lines)
