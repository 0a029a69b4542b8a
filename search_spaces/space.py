"""Declarative search spaces: load a YAML file, validate every combination, convert for Ray Tune / Optuna.

A space file marks every key it sets as `fixed`, `scientific` (what the study compares) or `nuisance`
(varied so the comparison is averaged or tuned over it), after the tuning playbook. Keys it does not
mention keep their `TrialConfig` defaults, i.e. they are fixed too. Format (see the shipped files)::

    description: one paragraph
    defaults: {search: grid, scheduler: fifo, num_samples: 1, metric: fid, mode: min}
    fixed:      {iterations: 2000, resolution: 64}          # same value in every trial
    scientific: {optimizer: {grid: [adam, adas]}, ttur: {grid: ["off", "on"]}}
    nuisance:   {beta1: {uniform: [0.3, 0.7]}, g_activation: {choice: [relu, elu]}}
    seeds: [0, 1, 2]                                        # shorthand: nuisance `seed: {grid: [...]}`
    factors:    {ttur: {"off": {lr_g: 2.0e-4, lr_d: 2.0e-4}, "on": {lr_g: 1.0e-4, lr_d: 4.0e-4}}}
    tie:        {d_activation: g_activation}                # D's activation moves with G's

Dimensions are `{grid: [...]}`, `{choice: [...]}`, `{uniform: [lo, hi]}`, `{loguniform: [lo, hi]}` or
`{randint: [lo, hi]}` (both ends inclusive). A factor is a named level -> several concrete keys
(TTUR off/on -> lr_g/lr_d); a tie copies one key into another after everything else is set.
Precedence when a trial config is built: TrialConfig defaults < fixed < factor levels < `--set`
overrides < searched keys < ties.

Example:
    >>> space = load_space("belmekki2022")
    >>> space.grid_size()
    24
    >>> space.resolve({"optimizer": "adas", "activation": "elu", "ttur": "on", "seed": 0}).lr_d
    0.0004
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from search_spaces.design import DESIGN_ID, DESIGN_POINT, Design, Draw, cell_points, check_draws, draw_cell, parse_design
from trainers import metric_keys as K
from trainers.config import TrialConfig
from trainers.errors import ConfigError, UserError

SPACES_DIR = Path(__file__).resolve().parent
ROLES = ("fixed", "scientific", "nuisance")
KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
CATEGORICAL = ("grid", "choice")
TOP_LEVEL = ("description", "defaults", "fixed", "scientific", "nuisance", "seeds", "factors", "tie", "design",
             "analysis")
DEFAULT_KEYS = ("search", "scheduler", "num_samples", "metric", "mode", "max_concurrent")
SEARCHES = ("grid", "random", "optuna")
SCHEDULERS = ("fifo", "asha", "pbt")
CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(TrialConfig))
# Above this many categorical combinations each value is checked on its own instead of every combination.
MAX_CHECKED_COMBINATIONS = 20_000


@dataclass(frozen=True)
class Dimension:
    """One searched key: a TrialConfig field or a factor name."""

    key: str
    kind: str  # one of KINDS
    values: tuple  # the list for grid/choice, (low, high) for the ranges
    role: str  # scientific | nuisance

    @property
    def categorical(self) -> bool:
        return self.kind in CATEGORICAL

    def candidates(self) -> tuple:
        """Values worth validating: every category, or both ends of a range."""
        return self.values


@dataclass
class SearchSpace:
    name: str
    description: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)
    dims: dict[str, Dimension] = field(default_factory=dict)
    factors: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    ties: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    forced: dict[str, Any] = field(default_factory=dict)  # --set overrides: win over factor levels too
    mutable: tuple[str, ...] = ()  # keys a scheduler changes during a trial (PBT): the point's value wins
    design: Design | None = None  # configurations drawn once, each run with every seed (search_spaces/design.py)
    _rows: list | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ building trial configs
    def resolve(self, point: Mapping[str, Any]) -> TrialConfig:
        """The TrialConfig of one point (a Ray trial's flat config: searched keys, maybe fixed ones too)."""
        point = flat_point(point)
        if DESIGN_ID in point:
            point = self._design_point(point)
        values: dict[str, Any] = dict(self.fixed)
        # Fixed keys come from the space, not the point: a trial config echoes them, and echoing them back
        # must not override what a factor level sets.
        extra = {k: v for k, v in point.items()
                 if k not in self.factors and (k not in self.fixed or k in self.mutable)}
        for name, levels in self.factors.items():
            if name in point:
                values.update(levels[_level_key(levels, point[name], name)])
            elif name in self.fixed_factors():
                values.update(levels[_level_key(levels, self.fixed[name], name)])
        values = {k: v for k, v in values.items() if k not in self.factors}
        values.update(self.forced)
        values.update(extra)
        for target, source in self.ties.items():
            values[target] = values.get(source, getattr(TrialConfig(), source))
        return TrialConfig.from_dict(values)

    def _design_point(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """A design point {design_id, seed, ...} as the flat point of its cell levels and drawn values
        (--set overrides still win: they are applied after the point)."""
        rows = self.design_rows()
        i = point[DESIGN_ID]
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(rows):
            raise ConfigError(f"space {self.name}: {DESIGN_ID}={i!r} is not a configuration of the design "
                              f"(0..{len(rows) - 1})")
        row = rows[i]
        drawn = {k: v for k, v in row["values"].items() if k not in self.forced}
        return {**row["cell"], **drawn, **{k: v for k, v in point.items() if k != DESIGN_ID}}

    def design_rows(self) -> list[dict[str, Any]]:
        """The design's configurations [{design_id, cell: {key: level}, values: {key: value}}] ([] without one)."""
        if self.design is None:
            return []
        if self._rows is None:
            grid = {c: self.dims[c].values for c in self.design.cells}
            rows: list[dict[str, Any]] = []
            for ci, cell in enumerate(cell_points(grid)):
                for values in draw_cell(self.design, cell, ci):
                    rows.append({DESIGN_ID: len(rows), "cell": cell, "values": values})
            object.__setattr__(self, "_rows", rows)
        return self._rows

    def seeds(self) -> list[Any]:
        """The seed grid ([] when the space has none: every trial takes TrialConfig's seed or the fixed one)."""
        return list(self.dims["seed"].values) if "seed" in self.dims else []

    def cell_of(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """The design cell {key: level} of a trial's flat point ({} outside a design)."""
        point = flat_point(point)
        if self.design is None or DESIGN_ID not in point:
            return {}
        return dict(self.design_rows()[point[DESIGN_ID]]["cell"])

    def materialised(self, search: str, num_samples: int, seed: int) -> SearchSpace:
        """This space with its range and choice dimensions drawn once per configuration when seeds are a grid.

        Under grid or random search a range crossed with a seed grid would be sampled per trial, so each seed
        of a "configuration" would get other values. Here each configuration is drawn once (Latin hypercube,
        seeded by `seed`): grid search draws `num_samples` inside each grid cell, random search draws
        `num_samples` over every key; each is then run with every seed. Other spaces are returned as they are.
        """
        drawn = [d for k, d in self.dims.items() if k != "seed" and (d.kind != "grid" or search == "random")]
        if self.design is not None or "seed" not in self.dims or not drawn or search not in ("grid", "random"):
            return self
        cells = tuple(k for k, d in self.dims.items() if k != "seed" and d.kind == "grid" and search == "grid")
        draws = {d.key: Draw(d.key, "choice" if d.categorical else d.kind, d.values) for d in drawn}
        design = Design(cells, int(num_samples), "lhs", int(seed), draws, {})
        dims = {k: d for k, d in self.dims.items() if k in cells or k == "seed"}
        return dataclasses.replace(self, dims=dims, design=design, _rows=None, defaults={**self.defaults})

    def fixed_factors(self) -> dict[str, Any]:
        return {k: v for k, v in self.fixed.items() if k in self.factors}

    def roles(self) -> dict[str, list[str]]:
        """Config fields per role, factors expanded into the fields they set (for analysis)."""
        out: dict[str, list[str]] = {"scientific": [], "nuisance": [], "fixed": []}
        for dim in self.dims.values():
            out[dim.role].extend(self.fields_of(dim.key))
        for key in self._design_draws():
            out["nuisance"].append(key)
        for key in self.fixed:
            out["fixed"].extend(self.fields_of(key))
        searched = set(out["scientific"]) | set(out["nuisance"])
        out["fixed"] = sorted(set(out["fixed"]) - searched)
        for target, source in self.ties.items():
            for keys in out.values():
                if source in keys and target not in keys:
                    keys.append(target)
        return {role: sorted(set(keys)) for role, keys in out.items()}

    def fields_of(self, key: str) -> list[str]:
        if key in self.factors:
            return sorted({f for level in self.factors[key].values() for f in level})
        return [key]

    def _design_draws(self) -> dict[str, Draw]:
        if self.design is None:
            return {}
        out = dict(self.design.draw)
        for levels in self.design.by_level.values():
            for keys in levels.values():
                out.update(keys)
        return out

    def grid_size(self) -> int:
        """Trials one pass of the grid makes (product of the grid dimensions; configurations x seeds with a design)."""
        if self.design is not None:
            return len(self.design_rows()) * max(len(self.seeds()), 1)
        return math.prod(len(d.values) for d in self.dims.values() if d.kind == "grid")

    def combinations(self) -> Iterator[dict[str, Any]]:
        """Every combination of categorical values, with both ends of each range."""
        if self.design is not None:
            for row in self.design_rows():
                for seed in self.seeds() or [None]:
                    yield {DESIGN_ID: row[DESIGN_ID], **({} if seed is None else {"seed": seed})}
            return
        dims = list(self.dims.values())
        for combo in itertools.product(*(d.candidates() for d in dims)):
            yield dict(zip((d.key for d in dims), combo))

    def with_overrides(self, overrides: Mapping[str, Any]) -> SearchSpace:
        """A copy where each overridden key is fixed in every trial: a searched key stops being searched,
        and a config key wins over what a factor level would set (`--set lr_g=1e-3` means lr_g=1e-3)."""
        for key in overrides:
            if key not in CONFIG_FIELDS and key not in self.factors:
                raise ConfigError(f"Unknown config key {key!r} in --set; known keys: {', '.join(CONFIG_FIELDS)}, "
                                  f"or a factor of the space: {', '.join(self.factors) or 'none'}")
        forced = {k: v for k, v in overrides.items() if k in CONFIG_FIELDS}
        new = dataclasses.replace(self, fixed={**self.fixed, **overrides}, forced={**self.forced, **forced},
                                  dims={k: d for k, d in self.dims.items() if k not in overrides},
                                  ties={t: s for t, s in self.ties.items() if t not in overrides})
        new.validate()
        return new

    # ------------------------------------------------------------------ conversion
    def to_tune(self, search: str = "grid") -> dict[str, Any]:
        """Ray Tune param_space: fixed keys as constants, grid keys as grid_search (search='grid') or
        choice (search='random'), ranges as uniform/loguniform/randint. For search='optuna' only the
        constants are returned: OptunaSearch owns the searched keys (`to_optuna`)."""
        from ray import tune

        space: dict[str, Any] = dict(self.fixed)
        if search == "optuna":
            return space
        if self.design is not None:  # the configurations are drawn already: a grid of design_id x seed
            space[DESIGN_ID] = tune.grid_search([row[DESIGN_ID] for row in self.design_rows()])
            if "seed" in self.dims:
                space["seed"] = tune.grid_search(self.seeds())
            return space
        for d in self.dims.values():
            if d.kind == "grid" and search == "grid":
                space[d.key] = tune.grid_search(list(d.values))
            elif d.categorical:
                space[d.key] = tune.choice(list(d.values))
            elif d.kind == "uniform":
                space[d.key] = tune.uniform(*d.values)
            elif d.kind == "loguniform":
                space[d.key] = tune.loguniform(*d.values)
            else:  # randint: inclusive in the file, exclusive upper bound in Ray
                space[d.key] = tune.randint(int(d.values[0]), int(d.values[1]) + 1)
        return space

    def to_optuna(self) -> dict[str, Any]:
        """Optuna distributions of the searched keys; grid keys become categorical."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        out: dict[str, Any] = {}
        for d in self.dims.values():
            if d.categorical:
                out[d.key] = CategoricalDistribution(list(d.values))
            elif d.kind == "randint":
                out[d.key] = IntDistribution(int(d.values[0]), int(d.values[1]))
            else:
                out[d.key] = FloatDistribution(float(d.values[0]), float(d.values[1]), log=d.kind == "loguniform")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (study.json): the file's content plus the roles per config field."""
        return {
            "name": self.name, "source": self.source, "description": self.description, "fixed": self.fixed,
            "dimensions": {k: {"kind": d.kind, "values": list(d.values), "role": d.role} for k, d in self.dims.items()},
            "factors": {k: {str(lv): v for lv, v in levels.items()} for k, levels in self.factors.items()},
            "tie": self.ties, "overrides": self.forced, "defaults": self.defaults, "roles": self.roles(),
            "design": self.design.to_dict() if self.design is not None else None,
        } | ({"dimensions": {**{k: {"kind": d.kind, "values": list(d.values), "role": d.role}
                                for k, d in self.dims.items()},
                             **{k: {"kind": d.kind, "values": list(d.values), "role": "nuisance"}
                                for k, d in self._design_draws().items() if d.drawn}}}
             if self.design is not None else {})

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise UserError naming the key and the allowed values if any trial of the space would be invalid."""
        for key in list(self.fixed) + list(self.dims):
            if key not in CONFIG_FIELDS and key not in self.factors:
                raise ConfigError(f"space {self.name}: unknown key {key!r}; allowed keys: "
                                  f"{', '.join(CONFIG_FIELDS)}, or a factor defined under `factors:`")
        for name, levels in self.factors.items():
            if name in CONFIG_FIELDS:
                raise ConfigError(f"space {self.name}: factor {name!r} has the name of a config key; rename it")
            for level, keys in levels.items():
                for key in keys:
                    if key not in CONFIG_FIELDS:
                        raise ConfigError(f"space {self.name}: factor {name}={level!r} sets unknown key {key!r}; "
                                          f"allowed keys: {', '.join(CONFIG_FIELDS)}")
        for name in self.factors:
            values = self.dims[name].values if name in self.dims else (self.fixed[name],) if name in self.fixed else ()
            if name in self.dims and not self.dims[name].categorical:
                raise ConfigError(f"space {self.name}: factor {name!r} must be searched with grid or choice")
            for v in values:
                _level_key(self.factors[name], v, name, space=self.name)
        for target, source in self.ties.items():
            for key in (target, source):
                if key not in CONFIG_FIELDS:
                    raise ConfigError(f"space {self.name}: tie {target}: {source} names unknown key {key!r}; "
                                      f"allowed keys: {', '.join(CONFIG_FIELDS)}")
            if target in self.dims:
                raise ConfigError(f"space {self.name}: {target!r} is tied to {source!r} and cannot also be searched")
        self._check_factor_overlap()
        for d in self.dims.values():
            _check_dimension(self.name, d)
        if self.design is not None:
            self._check_design()
        if self.defaults:
            _check_defaults(self.name, self.defaults)
        self._check_combinations()

    def _check_design(self) -> None:
        design = self.design
        assert design is not None
        for c in design.cells:
            if c in self.forced:
                raise ConfigError(f"space {self.name}: {c!r} is a design cell; --set cannot fix it (the design "
                                  "crosses every level)")
            if c not in self.dims or self.dims[c].kind != "grid" or self.dims[c].role != "scientific":
                raise ConfigError(f"space {self.name}: design cell {c!r} must be a scientific grid key "
                                  f"(scientific: {{{c}: {{grid: [...]}}}})")
        others = [k for k in self.dims if k not in design.cells and k != "seed"]
        if others:
            raise ConfigError(f"space {self.name}: {others[0]!r} is searched beside a design; draw it under "
                              "design: draw (or make it a design cell)")
        for key in self._design_draws():
            if key not in CONFIG_FIELDS:
                raise ConfigError(f"space {self.name}: design draws unknown key {key!r}; allowed keys: "
                                  f"{', '.join(CONFIG_FIELDS)}")
            if (key in self.fixed and key not in self.forced) or any(key in self.fields_of(c) for c in design.cells):
                raise ConfigError(f"space {self.name}: design draws {key!r}, which is also fixed or set by a cell; "
                                  "keep one of the two")
        check_draws(design, self.name, {c: self.dims[c].values for c in design.cells})

    def _check_factor_overlap(self) -> None:
        # A key set both by a searched factor and searched directly would make precedence matter silently.
        for name in self.factors:
            if name not in self.dims:
                continue
            for key in self.fields_of(name):
                if key in self.dims:
                    raise ConfigError(f"space {self.name}: {key!r} is searched directly and set by factor {name!r}; "
                                      "keep one of the two")

    def _check_combinations(self) -> None:
        dims = list(self.dims.values())
        n = math.prod(len(d.candidates()) for d in dims)
        if self.design is not None:  # every drawn configuration, with the first seed
            n = len(self.design_rows())
            seeds = self.seeds()[:1]
            points = ({DESIGN_ID: r[DESIGN_ID], **({"seed": seeds[0]} if seeds else {})} for r in self.design_rows())
        elif n <= MAX_CHECKED_COMBINATIONS:
            points = self.combinations()
        else:  # too many to build: check each value against the fixed part
            points = ({d.key: v} for d in dims for v in d.candidates())
        for point in points:
            try:
                self.resolve(point)
            except ConfigError as exc:
                where = ", ".join(f"{k}={v!r}" for k, v in point.items())
                raise ConfigError(f"space {self.name}: the trial with {where or 'the fixed values'} is invalid: "
                                  f"{exc}") from None


def flat_point(point: Mapping[str, Any]) -> Mapping[str, Any]:
    """A trial's flat config with a resumed design's {design_id, seed} pair unpacked."""
    if DESIGN_POINT not in point:
        return point
    return {**{k: v for k, v in point.items() if k != DESIGN_POINT}, **point[DESIGN_POINT]}


# ---------------------------------------------------------------------- loading
def available_spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load and validate a space by name (a file shipped in search_spaces/) or by path to a YAML file."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = SPACES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UserError(f"unknown search space {str(name_or_path)!r}; shipped spaces: "
                            f"{', '.join(available_spaces())}, or give a path to a YAML file")
    if not path.is_file():
        raise UserError(f"search space file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"search space file {path} is not valid YAML: {exc}") from None
    space = parse_space(raw, name=path.stem, source=str(path.resolve()))
    space.validate()
    return space


def parse_space(raw: Any, *, name: str, source: str = "") -> SearchSpace:
    """Build a SearchSpace from the parsed YAML mapping (checks the structure, not the values)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"space {name}: the file must hold a mapping with keys {', '.join(TOP_LEVEL)}")
    unknown = sorted(set(raw) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(f"space {name}: unknown section {unknown[0]!r}; allowed sections: {', '.join(TOP_LEVEL)}")
    fixed = _mapping(raw.get("fixed"), f"space {name}: fixed")
    dims: dict[str, Dimension] = {}
    for role in ("scientific", "nuisance"):
        for key, spec in _mapping(raw.get(role), f"space {name}: {role}").items():
            if key in dims or key in fixed:
                raise ConfigError(f"space {name}: key {key!r} appears in more than one section")
            dims[key] = _parse_dimension(name, key, spec, role)
    if raw.get("seeds") is not None:
        if "seed" in dims or "seed" in fixed:
            raise ConfigError(f"space {name}: `seeds:` and a `seed` key both given; keep one")
        seeds = raw["seeds"]
        if not isinstance(seeds, list) or not seeds:
            raise ConfigError(f"space {name}: seeds must be a non-empty list of integers, e.g. [0, 1, 2]")
        dims["seed"] = Dimension("seed", "grid", tuple(seeds), "nuisance")
    factors = {}
    for fname, levels in _mapping(raw.get("factors"), f"space {name}: factors").items():
        levels = _mapping(levels, f"space {name}: factor {fname}")
        factors[fname] = {lv: dict(_mapping(v, f"space {name}: factor {fname}={lv!r}")) for lv, v in levels.items()}
    ties = {str(k): str(v) for k, v in _mapping(raw.get("tie"), f"space {name}: tie").items()}
    defaults = dict(_mapping(raw.get("defaults"), f"space {name}: defaults"))
    design = parse_design(raw["design"], space=name) if raw.get("design") is not None else None
    return SearchSpace(name=name, description=str(raw.get("description", "")).strip(), fixed=dict(fixed),
                       dims=dims, factors=factors, ties=ties, defaults=defaults, source=source, design=design)


def _parse_dimension(space: str, key: str, spec: Any, role: str) -> Dimension:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise ConfigError(f"space {space}: {role} key {key!r} must be one of "
                          + ", ".join(f"{{{k}: [...]}}" for k in KINDS) + f"; got {spec!r} (put constants under fixed:)")
    kind, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise ConfigError(f"space {space}: {key}: {kind} needs a non-empty list, got {values!r}")
    return Dimension(key, kind, tuple(values), role)


def _check_dimension(space: str, d: Dimension) -> None:
    if d.categorical:
        if len(set(map(repr, d.values))) != len(d.values):
            raise ConfigError(f"space {space}: {d.key}: {d.kind} lists a value twice: {list(d.values)}")
        return
    if len(d.values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in d.values):
        raise ConfigError(f"space {space}: {d.key}: {d.kind} needs [low, high] numbers, got {list(d.values)}")
    low, high = d.values
    if not low < high:
        raise ConfigError(f"space {space}: {d.key}: {d.kind} needs low < high, got [{low}, {high}]")
    if d.kind == "loguniform" and low <= 0:
        raise ConfigError(f"space {space}: {d.key}: loguniform needs low > 0, got {low}")
    if d.kind == "randint" and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"space {space}: {d.key}: randint needs integer bounds, got [{low}, {high}]")


def _check_defaults(space: str, defaults: dict) -> None:
    for key in defaults:
        if key not in DEFAULT_KEYS:
            raise ConfigError(f"space {space}: unknown default {key!r}; allowed: {', '.join(DEFAULT_KEYS)}")
    if defaults.get("search", "grid") not in SEARCHES:
        raise ConfigError(f"space {space}: search={defaults['search']!r}; allowed: {', '.join(SEARCHES)}")
    if defaults.get("scheduler", "fifo") not in SCHEDULERS:
        raise ConfigError(f"space {space}: scheduler={defaults['scheduler']!r}; allowed: {', '.join(SCHEDULERS)}")
    if defaults.get("mode", "min") not in ("min", "max"):
        raise ConfigError(f"space {space}: mode={defaults['mode']!r}; allowed: min, max")
    if "metric" in defaults:
        check_metric(defaults["metric"])


def check_metric(metric: str) -> None:
    """A metric must be one the trainer reports: a metric_keys constant or a known prefix + suffix."""
    names = {v for k, v in vars(K).items() if k.isupper() and isinstance(v, str) and not k.startswith("STATUS_")}
    prefixes = (K.TSTR_PREFIX, K.AUGMENT_PREFIX, K.TRTR_PREFIX, K.FID_PER_CLASS_PREFIX)
    if metric in names or (metric.startswith(prefixes) and metric not in prefixes):
        return
    allowed = sorted(n for n in names if not n.endswith("_"))
    raise ConfigError(f"metric {metric!r} is not reported by the trainer; allowed: {', '.join(allowed)} "
                      f"or tstr_/augment_/trtr_<{K.ACCURACY}|{K.BALANCED_ACCURACY}|{K.ROC_AUC}>")


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of key: value, got {value!r}")
    return value


def _level_key(levels: Mapping[Any, Any], value: Any, factor: str, space: str = "") -> Any:
    # YAML reads unquoted on/off as booleans; match a level whichever way either side was written.
    for level in levels:
        if level == value or str(level).lower() == str(value).lower() or _onoff(level) == _onoff(value):
            return level
    prefix = f"space {space}: " if space else ""
    raise ConfigError(f"{prefix}factor {factor}={value!r} is not a defined level; allowed: "
                      f"{', '.join(map(str, levels))}")


def _onoff(value: Any) -> Any:
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
