"""`ahms-fm probe`: the command line of the probes (probe.py) and of their learning curves
(curves.py, with --steps); `python -m ahms_fm.evaluation.probe` runs it too."""

from __future__ import annotations

from absl import logging

from ahms_fm import cli_help
from ahms_fm.evaluation import compare, curves, probe


def run(argv=None):
    """Command line `ahms-fm probe` (flags are defined here, so importing defines none)."""
    import sys

    from absl import app, flags

    f = flags.DEFINE_string
    checkpoint = f("checkpoint", None, "A run's workdir, its checkpoints/ or one step folder.")
    data = f("dataset", None, "A prepared dataset folder or name (default: the checkpoint's).")
    train_data = f(
        "train_dataset",
        None,
        "External validation: train the probes on every "
        "participant of this dataset (name[:split[+split]]) ...",
    )
    test_data = f("test_dataset", None, "... and test them on every participant of this one.")
    data_dir = f("data_dir", "datasets", "Where dataset names are looked up.")
    target_texts = f(
        "targets",
        None,
        "Comma-separated targets, e.g. age,age>50,sex,af (default: the dataset's usual ones).",
    )
    out = f("out", None, "Report folder (default: <workdir>/probe).")
    which = flags.DEFINE_enum("which", None, ["teacher", "student"], "Encoder to evaluate.")
    baselines = f(
        "baselines", None, "random_init,init,handcrafted,demographic,ceiling (or '' for none)."
    )
    steps = f(
        "steps",
        None,
        "Learning curves: 'all' or comma-separated steps of the run's "
        "kept checkpoints (curves.csv, curves.md, curves.png).",
    )
    protocol = flags.DEFINE_enum(
        "protocol",
        None,
        ["auto", "split", "crossfit"],
        "Held-out test split, or outer k-fold over participants.",
    )
    folds = flags.DEFINE_integer("folds", None, "Cross-validation folds.")
    n_boot = flags.DEFINE_integer("n_boot", None, "Bootstrap replicates.")
    seed = flags.DEFINE_integer("seed", None, "Folds, bootstrap, random-init baseline seeds.")
    random_seeds = flags.DEFINE_integer("random_seeds", None, "Random-init baseline encoders.")
    headline = f(
        "headline",
        None,
        "Targets of the closing sentence (embedding against the "
        "best untrained encoder, by how much), e.g. 'age,age>50' (default: all).",
    )
    argv = argv or sys.argv
    if cli_help.wants_help(argv):
        cli_help.print_help(
            argv,
            __name__,
            "Linear probes of a checkpoint's frozen embeddings "
            "against untrained encoders, hand-crafted features and the "
            "ceiling, with bootstrap intervals; --steps for learning curves.",
            [
                "ahms-fm probe --checkpoint runs/demo --headline age,age>50",
                "ahms-fm probe --checkpoint runs/study --steps all",
                "ahms-fm probe --checkpoint runs/cinc --train_dataset "
                "cinc2017:train+validation --test_dataset cinc2017:test",
            ],
        )
    flags.mark_flags_as_required(["checkpoint"])

    def main(argv):
        del argv
        logging.set_verbosity(logging.WARNING)
        overrides = {
            k: v
            for k, v in {
                "protocol": protocol.value,
                "folds": folds.value,
                "n_boot": n_boot.value,
                "seed": seed.value,
                "random_seeds": random_seeds.value,
            }.items()
            if v is not None
        }
        kw = {
            "dataset_arg": data.value,
            "train_dataset": train_data.value,
            "test_dataset": test_data.value,
            "data_dir": data_dir.value,
            "target_texts": target_texts.value,
            "out_dir": out.value,
            "which": which.value,
            "baselines": baselines.value,
            "probe_overrides": overrides,
        }
        if steps.value:
            rep = curves.run_curves(checkpoint.value, steps.value, **kw)
        else:
            rep = probe.run_probe(checkpoint.value, **kw)
        print(rep["markdown"])
        print(f"report: {rep['out_dir']}")
        if rep.get("comparison"):
            wanted = [t for t in (headline.value or "").split(",") if t]
            print(compare.summary_sentence(rep["comparison"], wanted or None))

    app.run(main, argv=argv)


if __name__ == "__main__":
    run()
