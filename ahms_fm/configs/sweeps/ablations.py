"""The paper's ablations at the CPU study scale: the recipe, then one change each
(ahms_fm/configs/common.py's variants), 3 seeds each: 15 runs.

    ahms-fm sweep --sweep ablations --probe                    # one by one, here
    ahms-fm sweep --sweep ablations --config ppg \\
        --launcher slurm                                                # full scale, 15 jobs

600 steps a run (the study's 1,500 would take ~4 h for 15 runs on 2 cores); at the
study scale the recipe's age R2 reaches hand-crafted features' by ~450 steps
(docs/results.md). The summary pools the seeds: groups.md has each variant's mean with
a 95% t-interval over seeds and its difference from the recipe, paired by seed.
"""

from ahms_fm.sweep.axes import product, values, variants


def get_sweep():
    return {
        "config": "ppg:study",
        # Seeds outermost: every variant's seed 0 first, so a partial sweep is comparable.
        "sweep": product(
            values("seed", [0, 1, 2]),
            variants(
                [
                    "",  # the recipe: participant positives, InfoNCE + KoLeo, EMA teacher
                    "segment_level",  # positives: two views of one segment, not of one participant
                    "no_koleo",  # InfoNCE alone
                    "simclr",  # no teacher: the student encodes both views
                    "byol",  # BYOL's loss with a predictor, no negatives
                ]
            ),
        ),
        "overrides": {"num_steps": 600},
        "metrics": [
            "loss",
            "val/effective_rank",
            "val/effective_rank_centered",
            "val/retrieval_top1",
            "report/*",
        ],
        # Each run's probes without baselines: the untrained encoders and hand-crafted
        # features are the same for every run; probe them once (docs/results.md).
        "probe_args": ["--baselines="],
    }
