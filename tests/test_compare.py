"""The closing sentence of a probe report (compare.summary_sentence)."""

import pytest

from ahms_fm.evaluation import compare


def _row(target, metric, emb, best, init, diff, low, high, strongest="random_init/2"):
    cell = lambda v, f: {"features": f, "value": v, "low": v - 0.1, "high": v + 0.1}  # noqa: E731
    return {
        "target": target,
        "metric": metric,
        "n_seeds": 5,
        "embedding": cell(emb, "embedding"),
        "best_random": cell(best, "random_init/2"),
        "init": cell(init, "init"),
        "strongest_untrained": strongest,
        "vs_untrained": {
            "value": diff,
            "low": low,
            "high": high,
            "verdict": compare.verdict({"low": low, "high": high}),
        },
    }


def test_the_sentence_gives_each_targets_difference_interval_and_verdict():
    rows = [
        _row("age", "r2", 0.62, 0.39, 0.20, 0.23, 0.10, 0.35),
        _row("age>50", "roc_auc", 0.80, 0.70, 0.82, -0.02, -0.07, 0.03, strongest="init"),
        _row("sex", "roc_auc", 0.5, 0.5, 0.5, 0.0, -0.1, 0.1),
    ]
    s = compare.summary_sentence(rows, ["age", "age>50"])
    assert "best of 5 random-init seeds" in s
    assert (
        "on age R² 0.620 against 0.390 (random_init/2), a difference of +0.230 "
        "[+0.100, +0.350] (ahead)" in s
    )
    # The strongest untrained encoder was the run's own init: its value is the one quoted.
    assert (
        "on age>50 ROC AUC 0.800 against 0.820 (init), a difference of -0.020 "
        "[-0.070, +0.030] (not distinguishable)" in s
    )
    assert "sex" not in s
    assert "sex" in compare.summary_sentence(rows)  # default: every target


def test_the_sentence_refuses_a_target_that_was_not_compared():
    with pytest.raises(ValueError, match="no comparison for \\['bmi'\\]"):
        compare.summary_sentence([_row("age", "r2", 0.6, 0.4, 0.2, 0.2, 0.1, 0.3)], ["bmi"])
