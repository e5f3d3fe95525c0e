"""Learning rate x KoLeo weight (a product), each learning rate with its own warmup (a zip).

3 learning rates (each zipped with a warmup) x 3 KoLeo weights = 9 runs, under warmup-cosine:

    ahms-fm sweep --sweep learning_rate --dry-run
"""

from ahms_fm.sweep.axes import product, values, zip_


def get_sweep():
    return {
        "config": "ppg:runlocal",
        "sweep": product(
            # Larger steps, longer warmup: the two keys move together, so zip them.
            zip_(
                values("optimizer.learning_rate", [3e-4, 1e-3, 3e-3]),
                values("schedule.warmup_steps", [0, 3, 6]),
            ),
            values("loss.koleo_weight", [0.0, 0.1, 0.3]),
        ),
        "overrides": {"schedule.name": "warmup_cosine"},  # every run, not in the names
        "metrics": ["loss", "val/*", "probe/*"],
    }
