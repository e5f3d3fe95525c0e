"""The paper's ablations at the CPU study scale: the recipe, then one change each
(configs/common.py's variants), 3 seeds each: 15 runs.

    ahms-fm sweep --sweep configs/sweeps/ablations.py --probe          # one by one, here
    ahms-fm sweep --sweep configs/sweeps/ablations.py --config configs/ppg.py \\
        --launcher slurm                                                # full scale, 15 jobs

600 steps a run (the study's 1,500 would take ~4 h for 15 runs on 2 cores); at the
study scale the recipe's age R2 reaches hand-crafted features' by ~450 steps
(docs/results.md).
"""

from ahms_fm.sweep import product, values, variants


def get_sweep():
    return {
        "config": "configs/ppg.py:study",
        "sweep": product(
            variants([
                "",  # the recipe: participant positives, InfoNCE + KoLeo, EMA teacher
                "segment_level",  # positives: two views of one segment, not of one participant
                "no_koleo",  # InfoNCE alone
                "simclr",  # no teacher: the student encodes both views
                "byol",  # BYOL's loss with a predictor, no negatives
            ]),
            values("seed", [0, 1, 2]),
        ),
        "overrides": {"num_steps": 600},
        "metrics": ["loss", "val/*", "report/*"],
    }
