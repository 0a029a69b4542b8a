"""A study's design: its configurations drawn once, before any trial, then each run with every seed.

A configuration is the unit of evidence and seeds are its repeats, so a value drawn at random must be
drawn once per configuration, not once per trial (Ray Tune samples a range afresh for every grid
point, so a range crossed with a seed grid would give each seed other values). A space's `design:`
section says how the configurations are drawn:

    design:
      cells: [optimizer, activation, ttur]   # scientific grid keys crossed: the design cells
      per_cell: 11                           # configurations drawn inside each cell
      method: lhs                            # lhs (Latin hypercube) | sobol (scrambled Sobol)
      seed: 20261204                         # the draw's seed: the same file always gives the same design
      draw:                                  # drawn in every cell, space-filling
        lr_g: {loguniform: [5.0e-5, 5.0e-4]}
        batch_size: {choice: [32, 64, 128]}
      by_level:                              # drawn (or set) only in cells with that level
        ttur:
          "off": {lr_d: {same_as: lr_g}}
          "on": {lr_d: {loguniform: [1.5, 6.0], times: lr_g}}   # lr_d = lr_g x a ratio in [1.5, 6]

Kinds: {choice: [...]}, {uniform: [lo, hi]}, {loguniform: [lo, hi]}, {randint: [lo, hi]} (inclusive),
optionally with `times: <key>` (the drawn value multiplies another drawn key), and {same_as: <key>}.
A categorical key takes its values in equal strata of the unit interval, so a Latin hypercube spreads
them evenly over a cell's configurations. Each cell is drawn from its own stream (the seed and the
cell's index), so adding seeds or reading the design never changes a configuration.

`materialise` turns a design (or a space's range dimensions under grid/random search) into rows
{design_id, cell, values}; the search then runs `design_id x seed` as a grid.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainers.errors import ConfigError

METHODS = ("lhs", "sobol")
DRAW_KINDS = ("choice", "uniform", "loguniform", "randint", "same_as")
DESIGN_KEYS = ("cells", "per_cell", "method", "seed", "draw", "by_level")
DESIGN_ID = "design_id"  # the Ray config key naming a configuration of the design
# A resume from the results store alone runs the trials not yet done: {design_id, seed} pairs under this key.
DESIGN_POINT = "design_point"


@dataclass(frozen=True)
class Draw:
    """How one key is drawn: a kind with its values, maybe relative to another key."""

    key: str
    kind: str
    values: tuple
    times: str = ""

    @property
    def drawn(self) -> bool:
        return self.kind != "same_as"

    def value(self, u: float) -> Any:
        """The value at position u in [0, 1) of the unit interval."""
        if self.kind == "choice":
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        lo, hi = self.values
        if self.kind == "uniform":
            return _round(lo + u * (hi - lo))
        if self.kind == "loguniform":
            return _round(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        return int(lo) + min(int(u * (int(hi) - int(lo) + 1)), int(hi) - int(lo))  # randint, inclusive


@dataclass(frozen=True)
class Design:
    cells: tuple[str, ...]
    per_cell: int
    method: str = "lhs"
    seed: int = 0
    draw: dict[str, Draw] = field(default_factory=dict)
    by_level: dict[str, dict[str, dict[str, Draw]]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        def spec(d: Draw) -> dict:
            out: dict[str, Any] = {d.kind: d.values[0] if d.kind == "same_as" else list(d.values)}
            if d.times:
                out["times"] = d.times
            return out
        return {"cells": list(self.cells), "per_cell": self.per_cell, "method": self.method, "seed": self.seed,
                "draw": {k: spec(d) for k, d in self.draw.items()},
                "by_level": {f: {str(lv): {k: spec(d) for k, d in keys.items()} for lv, keys in levels.items()}
                             for f, levels in self.by_level.items()}}


def parse_design(raw: Any, *, space: str) -> Design:
    """Check the structure of a `design:` section (values are checked when the space validates its trials)."""
    where = f"space {space}: design"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(DESIGN_KEYS)}")
    unknown = sorted(set(raw) - set(DESIGN_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(DESIGN_KEYS)}")
    cells = raw.get("cells") or []
    if not isinstance(cells, list) or not all(isinstance(c, str) for c in cells):
        raise ConfigError(f"{where}: cells must be a list of the space's scientific grid keys, e.g. [optimizer, ttur]")
    per_cell = raw.get("per_cell")
    if isinstance(per_cell, bool) or not isinstance(per_cell, int) or per_cell < 1:
        raise ConfigError(f"{where}: per_cell={per_cell!r} must be an integer >= 1 (configurations per cell)")
    method = raw.get("method", "lhs")
    if method not in METHODS:
        raise ConfigError(f"{where}: method={method!r} is not allowed; allowed values: {', '.join(METHODS)}")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}: seed={seed!r} must be an integer >= 0")
    draw = _draws(raw.get("draw") or {}, f"{where}: draw")
    by_level: dict[str, dict[str, dict[str, Draw]]] = {}
    levels_raw = raw.get("by_level") or {}
    if not isinstance(levels_raw, Mapping):
        raise ConfigError(f"{where}: by_level must map a cell key to {{level: {{key: spec}}}}")
    for factor, levels in levels_raw.items():
        if factor not in cells:
            raise ConfigError(f"{where}: by_level names {factor!r}, which is not one of the cells ({', '.join(cells)})")
        if not isinstance(levels, Mapping):
            raise ConfigError(f"{where}: by_level {factor} must map each level to {{key: spec}}")
        by_level[factor] = {_level(lv): _draws(keys or {}, f"{where}: by_level {factor}={lv!r}")
                            for lv, keys in levels.items()}
    return Design(tuple(cells), per_cell, method, seed, draw, by_level)


def cell_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the cell keys' levels, in the order the file lists them."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def draw_cell(design: Design, cell: Mapping[str, Any], cell_index: int) -> list[dict[str, Any]]:
    """`per_cell` value sets for one cell, space-filling over the keys drawn there."""
    draws = dict(design.draw)
    for factor, level in cell.items():
        draws.update(design.by_level.get(factor, {}).get(_level(level), {}))
    return draw_points(draws, design.per_cell, method=design.method,
                       seed=np.random.SeedSequence([design.seed, cell_index]))


def draw_points(draws: Mapping[str, Draw], n: int, *, method: str, seed: Any) -> list[dict[str, Any]]:
    """n value sets: the drawn keys fill a unit hypercube (LHS or scrambled Sobol), then relative keys follow."""
    from scipy.stats import qmc

    keys = sorted(k for k, d in draws.items() if d.drawn)
    rng = np.random.default_rng(seed)
    if not keys:
        u = np.zeros((n, 0))
    elif method == "sobol":
        u = qmc.Sobol(len(keys), scramble=True, seed=rng).random(n)
    else:
        u = qmc.LatinHypercube(len(keys), seed=rng).random(n)
    rows = []
    for i in range(n):
        row = {k: draws[k].value(float(u[i, j])) for j, k in enumerate(keys)}
        for k in keys:
            if draws[k].times:
                row[k] = _round(row[k] * row[draws[k].times])
        for k, d in draws.items():
            if not d.drawn:
                row[k] = row[d.values[0]]
        rows.append(row)
    return rows


def check_draws(design: Design, space: str, cell_levels: Mapping[str, Sequence[Any]]) -> None:
    """`times`/`same_as` must name a key drawn in the same cell; by_level must name real levels."""
    for factor, levels in design.by_level.items():
        known = {_level(v) for v in cell_levels.get(factor, ())}
        for lv in levels:
            if lv not in known:
                raise ConfigError(f"space {space}: design by_level {factor}={lv!r} is not a level of {factor}; "
                                  f"allowed: {', '.join(sorted(known))}")
    for cell in cell_points(cell_levels):
        draws = dict(design.draw)
        for factor, level in cell.items():
            draws.update(design.by_level.get(factor, {}).get(_level(level), {}))
        for k, d in draws.items():
            ref = d.values[0] if d.kind == "same_as" else d.times
            if ref and (ref not in draws or not draws[ref].drawn or draws[ref].times):
                raise ConfigError(f"space {space}: design key {k!r} refers to {ref!r}, which is not drawn "
                                  f"directly in the cell {_describe(cell)}")


def _draws(raw: Any, where: str) -> dict[str, Draw]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must map config keys to {{kind: values}}")
    out = {}
    for key, spec in raw.items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: {key} must be one of " + ", ".join(f"{{{k}: ...}}" for k in DRAW_KINDS))
        times = spec.get("times", "")
        kinds = [k for k in spec if k != "times"]
        if len(kinds) != 1 or kinds[0] not in DRAW_KINDS:
            raise ConfigError(f"{where}: {key} must be one of " + ", ".join(f"{{{k}: ...}}" for k in DRAW_KINDS)
                              + f" (optionally with times: <key>); got {dict(spec)!r}")
        kind, values = kinds[0], spec[kinds[0]]
        if kind == "same_as":
            if not isinstance(values, str) or times:
                raise ConfigError(f"{where}: {key}: same_as takes the name of another drawn key")
            out[str(key)] = Draw(str(key), kind, (values,))
            continue
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: {key}: {kind} needs a non-empty list, got {values!r}")
        if kind != "choice":
            if len(values) != 2 or not all(_number(v) for v in values) or not values[0] < values[1]:
                raise ConfigError(f"{where}: {key}: {kind} needs [low, high] numbers with low < high, got {values}")
            if kind == "loguniform" and values[0] <= 0:
                raise ConfigError(f"{where}: {key}: loguniform needs low > 0, got {values[0]}")
        if times and kind not in ("uniform", "loguniform"):
            raise ConfigError(f"{where}: {key}: times applies to uniform or loguniform draws only")
        out[str(key)] = Draw(str(key), kind, tuple(values), str(times))
    return out


def _level(value: Any) -> str:
    # YAML reads unquoted on/off as booleans; levels are compared as the file's text.
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else str(value)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _round(x: float) -> float:
    # Six significant digits: the configuration reads cleanly in study.json and the tables.
    return float(f"{x:.6g}")


def _describe(cell: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in cell.items()) or "(no cells)"
