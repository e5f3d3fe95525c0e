"""The axis language of sweep files: `values`, `variants` and their `product`, `zip_`
and `chain`. Sweep files import these (and nothing that runs anything)."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, NamedTuple


class SweepError(ValueError):
    """A sweep that cannot be expanded: the message names the key and the sweep file."""


# ----------------------------------------------------------------------------
# Axes: values, variants, and their product, zip and chain.
# ----------------------------------------------------------------------------


class Label(NamedTuple):
    """How a point shows in run names and the summary: `column=text`, or `text` alone."""

    column: str
    text: str
    keyed: bool = True


@dataclasses.dataclass(frozen=True)
class Point:
    """One setting of the swept keys: config overrides, config variants, labels."""

    overrides: tuple[tuple[str, Any], ...] = ()
    variants: tuple[str, ...] = ()
    labels: tuple[Label, ...] = ()

    def __add__(self, other: Point) -> Point:
        keys = {k for k, _ in self.overrides} & {k for k, _ in other.overrides}
        if keys:
            raise SweepError(f"config key(s) {sorted(keys)} set by two axes")
        columns = {c.column for c in self.labels} & {c.column for c in other.labels}
        if columns:
            raise SweepError(
                f"column(s) {sorted(columns)} labelled by two axes; give one of them name=..."
            )
        return Point(
            self.overrides + other.overrides,
            self.variants + other.variants,
            self.labels + other.labels,
        )


Axis = tuple[Point, ...]


def values(key: str, vals, *, labels=None, name: str | None = None) -> Axis:
    """An axis over one config key (dotted, e.g. "optimizer.learning_rate").

    `labels` replaces each value's text in run names (e.g. for tuples); `name` the
    column (default: the key, shortened to its shortest unambiguous ending).
    """
    vals = list(vals)
    labels = [_text(v) for v in vals] if labels is None else [str(s) for s in labels]
    if not vals or len(labels) != len(vals):
        raise SweepError(f"values({key!r}): need values, and one label per value")
    return tuple(
        Point(overrides=((key, v),), labels=(Label(name or key, s),))
        for v, s in zip(vals, labels, strict=True)
    )


def variants(names, *, labels=None, name: str = "variant") -> Axis:
    """An axis over config variants, appended to the config's `:variant` list.

    "" is the config as given, labelled "recipe"; "a,b" applies both, labelled "a+b".
    Run names show the label alone, without a column name.
    """
    names = list(names)
    if labels is None:
        labels = [n.replace(",", "+") or "recipe" for n in names]
    labels = [str(s) for s in labels]
    if not names or len(labels) != len(names):
        raise SweepError("variants(): need names, and one label per name")
    return tuple(
        Point(variants=tuple(v for v in n.split(",") if v), labels=(Label(name, s, keyed=False),))
        for n, s in zip(names, labels, strict=True)
    )


def product(*axes: Axis) -> Axis:
    """Every combination, the first axis outermost (like itertools.product)."""
    return tuple(sum(combo, Point()) for combo in itertools.product(*axes))


def zip_(*axes: Axis) -> Axis:
    """The i-th point of every axis together; the axes must have one length."""
    lengths = [len(a) for a in axes]
    if len(set(lengths)) > 1:
        raise SweepError(f"zip_ over axes of different lengths {lengths}")
    return tuple(sum(points, Point()) for points in zip(*axes, strict=True))


def chain(*axes: Axis) -> Axis:
    """The points of each axis after one another (runs may differ in their columns)."""
    return tuple(p for axis in axes for p in axis)


def _text(value) -> str:
    """A value as it shows in run names."""
    if isinstance(value, (list, tuple)):
        return "_".join(_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _flag_text(value) -> str:
    """A value as `--config.key=` text that ml_collections parses back to it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        value = tuple(value)  # config sequences are tuples
    return value if isinstance(value, str) else repr(value)
