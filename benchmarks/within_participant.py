"""How much a synthetic participant's segments vary, against how much participants
differ: per-segment heart rate, RMSSD, pulse amplitude (all channels' and channel 0's), crest
time and reflected-wave height from the generator's own ground truth, their
mean, the between- and within-participant standard deviations and the intraclass
correlation ICC(1) = between variance / (between + within). A study script for the
question whether segment-level positives can tell participants apart as easily as
participant-level ones (docs/results.md, the ablations).

    python benchmarks/within_participant.py [--participants 300] [--segments 8] [--seconds 20]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import numpy as np

from ahms_fm.data import synthetic


def icc(values: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, between-participant sd, within-participant sd, ICC(1)) of [people, segments]."""
    per = values.shape[1]
    within = np.nanmean(np.nanvar(values, axis=1, ddof=1))
    between = max(np.nanvar(np.nanmean(values, axis=1), ddof=1) - within / per, 0.0)
    return (
        float(np.nanmean(values)),
        float(np.sqrt(between)),
        float(np.sqrt(within)),
        float(between / (between + within)),
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--participants", type=int, default=300)
    p.add_argument("--segments", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0)
    a = p.parse_args()
    people = synthetic.sample_participants(0, a.participants)
    index = np.repeat(np.arange(a.participants), a.segments)
    segment = np.tile(np.arange(a.segments), a.participants)
    _, info = synthetic.ppg_segments(0, people, index, segment, seconds=a.seconds, return_info=True)
    print(f"{a.participants} participants x {a.segments} segments of {a.seconds:g} s")
    print("| quantity | mean | between-participant sd | within-participant sd | ICC(1) |")
    print("|---|---|---|---|---|")
    sinus = ~people["af"]
    for name, unit in (
        ("heart_rate", "bpm"),
        ("rmssd", "ms"),
        ("log pulse_amplitude", ""),
        ("log channel_gain", ""),
        ("crest_time", "ms"),
        ("reflection_height", ""),
    ):
        v = np.asarray(info[name.removeprefix("log ")], float).reshape(a.participants, a.segments)
        v = np.log(v) if name.startswith("log ") else v * 1e3 if name == "crest_time" else v
        if name == "rmssd":  # AF's RMSSD is another quantity; sinus rhythm only
            v, name = v[sinus], "rmssd, sinus rhythm"
        m, b, w, r = icc(v)
        print(f"| {name}{f' ({unit})' if unit else ''} | {m:.3g} | {b:.3g} | {w:.3g} | {r:.2f} |")


if __name__ == "__main__":
    main()
