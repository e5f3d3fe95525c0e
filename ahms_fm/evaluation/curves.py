"""Learning curves: the same probes on several checkpoints of one run.

    ahms-fm probe --checkpoint runs/ppg --steps all         # or --steps 0,300,600

The baselines (random-init seeds, init, hand-crafted features, and on a synthetic
cohort the ceiling: its ground-truth physiology, ceiling.py) are embedded and
probed once; then each step's embedding goes through the same probes (same folds,
same bootstrap draws) and is compared with them as in the single-checkpoint report
(`compare`). Written into the report folder:

- curves.csv: one row per step and target: the headline metric (R² or ROC AUC) with
  its interval, the baselines' values, the paired differences against the best
  untrained encoder and the hand-crafted features, and (with a ceiling) the ceiling
  and the embedding's fraction of it;
- curves.md: those numbers as tables, then the baselines' own tables;
- curves.png: one panel per target, the metric against the training step with its
  interval as a band; the random seeds' range as a shaded band, init as a dashed
  line, hand-crafted features as a line with their interval, the ceiling dash-dotted,
  chance dotted.

A step-0 point is the step-0 checkpoint as saved (its batch-norm statistics not
re-estimated); the `init` line is the same weights with the baselines' batch-norm
treatment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ahms_fm.evaluation import compare, embeddings, probe, report

CHANCE = {"r2": 0.0, "roc_auc": 0.5}  # the dotted line of each panel


def select_steps(checkpoint, steps: str) -> dict:
    """{step: step folder} for `steps` ("all" or "0,300,600") of the run at `checkpoint`
    (its workdir, checkpoints folder or one of its step folders)."""
    path = Path(checkpoint).absolute()
    if path.name.isdigit() and (path / "state").is_dir():
        path = path.parent
    kept = embeddings.list_checkpoints(path)
    if steps.strip() == "all":
        return kept
    try:
        wanted = sorted({int(s) for s in steps.split(",") if s.strip()})
    except ValueError:
        raise ValueError(f"--steps must be 'all' or comma-separated steps, got {steps!r}") from None
    missing = [s for s in wanted if s not in kept]
    if missing or not wanted:
        raise FileNotFoundError(
            f"{path}: no complete checkpoint of step(s) {missing}; kept: {sorted(kept)}"
        )
    return {s: kept[s] for s in wanted}


def run_curves(checkpoint, steps: str, *, progress: bool = True, **kw) -> dict:
    """Probe every selected checkpoint; `kw` as `probe.run_probe`. Returns {"rows",
    "markdown", "out_dir", ...} and writes curves.csv, curves.md and curves.png."""
    ev = probe.prepare(checkpoint, **kw)
    chosen = select_steps(checkpoint, steps)
    base, table, rows = None, None, []
    for step, step_dir in chosen.items():
        encoder = embeddings.load_encoder(step_dir, which=ev.which)
        t, z = probe.embed(ev, encoder, progress)
        if base is None:  # the baselines once: the segment order is the cohort's, fixed
            table = t
            base, _ = probe.probe_features(
                ev,
                table,
                probe.baseline_features(ev, progress),
                demographic=False,
                ceiling=probe.CEILING in ev.baselines,
            )
        results, _ = probe.probe_features(ev, table, {"embedding": z}, demographic=False)
        rows += curve_rows(
            step, probe.compare_results(ev, base + results), compare.seed_summary(base)
        )
    ev.out_dir.mkdir(parents=True, exist_ok=True)
    header = {"checkpoint": str(ev.step_dir.parent), "steps": list(chosen), **ev.header()}
    text = write(ev.out_dir, rows, base, header)
    return {**header, "rows": rows, "markdown": text, "out_dir": str(ev.out_dir)}


def _flat(prefix: str, d: dict | None) -> dict:
    keys = ("value", "low", "high")
    return {f"{prefix}{'' if k == 'value' else '_' + k}": (d or {}).get(k, np.nan) for k in keys}


def curve_rows(step: int, comparison, seeds) -> list[dict]:
    """One flat row per target of one step (see the module docstring)."""
    rows = []
    for c in comparison:
        spread = next(
            (s for s in seeds if s["target"] == c["target"] and s["metric"] == c["metric"]), None
        )
        rows.append(
            {
                "step": step,
                "target": c["target"],
                "metric": c["metric"],
                **_flat("embedding", c["embedding"]),
                **_flat("best_random", c["best_random"]),
                "best_random_seed": (c["best_random"] or {}).get("features", ""),
                "random_min": spread["min"] if spread else np.nan,
                "random_max": spread["max"] if spread else np.nan,
                **_flat("init", c["init"]),
                **_flat("handcrafted", c["handcrafted"]),
                **_flat("vs_untrained", c["vs_untrained"]),
                "vs_untrained_baseline": c["strongest_untrained"] or "",
                "vs_untrained_verdict": (c["vs_untrained"] or {}).get("verdict", ""),
                **_flat("vs_handcrafted", c["vs_handcrafted"]),
                "vs_handcrafted_verdict": (c["vs_handcrafted"] or {}).get("verdict", ""),
                **_flat("ceiling", c.get("ceiling")),
                "fraction_of_ceiling": (c.get("fraction_of_ceiling") or {}).get(
                    "embedding", np.nan
                ),
            }
        )
    return rows


def markdown(rows, level: float) -> str:
    """Per target: the metric and the paired differences at every step."""
    pct = f"{round(level * 100)}%"
    lines = [
        f"Learning curves (value [{pct} bootstrap CI]; differences paired, embedding "
        "minus baseline):",
        "",
    ]
    for target in dict.fromkeys(r["target"] for r in rows):
        mine = [r for r in rows if r["target"] == target]
        first = mine[0]
        label = report.METRIC_LABELS[first["metric"]]
        ceiling = np.isfinite(first["ceiling"])
        lines += [
            f"**{target}** ({label}); best random seed "
            f"{_num(first['best_random'])} (seeds {_num(first['random_min'])}–"
            f"{_num(first['random_max'])}), init {_num(first['init'])}, hand-crafted "
            f"{_num(first['handcrafted'])}"
            + (f", ceiling {_ci(first, 'ceiling')}" if ceiling else ""),
            "",
            "| step | embedding | − best untrained | − hand-crafted |"
            + (" fraction of ceiling |" if ceiling else ""),
            "|---|---|---|---|" + ("---|" if ceiling else ""),
        ]
        for r in mine:
            lines.append(
                f"| {r['step']} | {_ci(r, 'embedding')} | {_ci(r, 'vs_untrained')} "
                f"{r['vs_untrained_verdict']} | {_ci(r, 'vs_handcrafted')} "
                f"{r['vs_handcrafted_verdict']} |"
                + (f" {_num(r['fraction_of_ceiling'])} |" if ceiling else "")
            )
        lines.append("")
    return "\n".join(lines)


def _num(v) -> str:
    return f"{v:.3f}" if np.isfinite(v) else "–"


def _ci(r: dict, prefix: str) -> str:
    v = r[prefix]
    if not np.isfinite(v):
        return "–"
    return f"{v:.3f} [{r[prefix + '_low']:.3f}, {r[prefix + '_high']:.3f}]"


def plot(rows, path: Path) -> None:
    """One panel per target: the embedding's metric vs step, and the baselines."""
    names = list(dict.fromkeys(r["target"] for r in rows))
    if not names:
        return
    fig, axes = report._grid(len(names))
    for ax, name in zip(axes, names, strict=False):
        mine = [r for r in rows if r["target"] == name]
        x = np.array([r["step"] for r in mine], float)
        col = {
            k: np.array([r[k] for r in mine], float)
            for k in mine[0]
            if k
            not in (
                "target",
                "metric",
                "best_random_seed",
                "vs_untrained_baseline",
                "vs_untrained_verdict",
                "vs_handcrafted_verdict",
            )
        }
        ax.fill_between(x, col["embedding_low"], col["embedding_high"], alpha=0.25)
        ax.plot(x, col["embedding"], "o-", label="embedding")
        first = mine[0]
        if np.isfinite(first["random_min"]):
            ax.axhspan(
                first["random_min"],
                first["random_max"],
                color="grey",
                alpha=0.3,
                label="random init (seeds' range)",
            )
        if np.isfinite(first["init"]):
            ax.axhline(first["init"], color="k", ls="--", lw=1, label="init")
        if np.isfinite(first["handcrafted"]):
            ax.axhline(first["handcrafted"], color="C2", lw=1, label="hand-crafted")
            ax.axhspan(first["handcrafted_low"], first["handcrafted_high"], color="C2", alpha=0.12)
        if np.isfinite(first["ceiling"]):
            ax.axhline(first["ceiling"], color="C3", ls="-.", lw=1, label="ceiling")
        ax.axhline(CHANCE[first["metric"]], color="grey", ls=":", lw=1)
        ax.set_title(f"{name} ({report.METRIC_LABELS[first['metric']]})", fontsize=9)
        ax.set_xlabel("training step")
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write(out_dir: Path, rows, base_results, header: dict) -> str:
    """curves.csv, curves.md (with the baselines' tables) and curves.png; the markdown."""
    import pandas as pd

    level = header.get("probe", {}).get("level", 0.95)
    pd.DataFrame(rows).to_csv(out_dir / "curves.csv", index=False)
    text = markdown(rows, level)
    if base_results:
        text += "\nBaselines (probed once):\n\n" + report.markdown(base_results, level)
    (out_dir / "curves.md").write_text(
        f"# Learning curves: {header.get('checkpoint')} ({header.get('which')})\n\n"
        f"dataset: {header.get('dataset')}; steps: {header.get('steps')}\n\n" + text
    )
    plot(rows, out_dir / "curves.png")
    return text
