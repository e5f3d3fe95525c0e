"""The paper's ablations: the recipe, then one change each (configs/common.py's variants).

    ahms-fm sweep --sweep configs/sweeps/ablations.py --probe          # runlocal, one by one
    ahms-fm sweep --sweep configs/sweeps/ablations.py --config configs/ppg.py \\
        --launcher slurm                                                # full scale, 5 jobs
"""

from ahms_fm.sweep import variants


def get_sweep():
    return {
        "config": "configs/ppg.py:runlocal",
        "sweep": variants([
            "",  # the recipe: participant positives, InfoNCE + KoLeo, EMA teacher
            "segment_level",  # positives: two views of one segment, not of one participant
            "no_koleo",  # InfoNCE alone
            "simclr",  # no teacher: the student encodes both views
            "byol",  # BYOL's loss with a predictor, no negatives
        ]),
        "metrics": ["loss", "val/*", "report/*"],
    }
