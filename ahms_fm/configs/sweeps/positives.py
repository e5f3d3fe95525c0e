"""Participant- against segment-level positives (the paper's Table 2) on the synthetic
cohort whose watch is put on anew each day (generator version 2): 3 seeds each, 6 runs.

    ahms-fm sweep --sweep positives --probe

The pair of the ablations sweep, again, after the generator change: in version 1
the sensor's geometry was fixed per person, so one segment told a person apart as well as
two of them did (docs/results.md, the ablations).
"""

from ahms_fm.sweep.axes import product, values, variants


def get_sweep():
    return {
        "config": "ppg:study",
        "sweep": product(values("seed", [0, 1, 2]), variants(["", "segment_level"])),
        "overrides": {"num_steps": 600},
        "metrics": [
            "loss",
            "val/effective_rank",
            "val/effective_rank_centered",
            "val/retrieval_top1",
            "report/*",
        ],
        "probe_args": ["--baselines="],
    }
