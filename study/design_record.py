"""What study.json records before the first trial: every configuration with its full config and its seeds,
and the check that a confirmatory study repeats no (configuration, seed) pair of the studies it excludes.

A pilot and a confirmatory study on the same configurations and seeds give the same numbers (training is
exact on CPU), so a plan's `excludes: [results/pilot]` makes `gan-study run` refuse such a study, naming
the overlap; configurations reused with new seeds are counted and reported (the analysis says so).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_spaces.design import DESIGN_ID
from search_spaces.space import MAX_CHECKED_COMBINATIONS, SearchSpace
from study.layout import STUDY_FILE, TRIALS_FILE
from trainers.config import TrialConfig
from trainers.errors import UserError

# Fields that change what is logged or where, never what is trained or measured: two trials differing only
# here are the same (configuration, seed). `data` is compared by file or folder name (paths move).
BOOKKEEPING = frozenset({"name", "num_threads", "device", "checkpoint_every", "report_every", "sample_grid"})
REPO = Path(__file__).resolve().parents[1]


def design_record(space: SearchSpace, *, search: str) -> dict[str, Any]:
    """{"configurations": [{configuration, cell, config, seeds}], "trials": n} or, when the search chooses
    configurations as it goes (Optuna, random search without seeds), {"configurations": None, "why": ...}."""
    if search == "optuna" or (space.design is None and any(not d.categorical for d in space.dims.values())):
        return {"configurations": None, "trials": None,
                "why": f"search {search} chooses configurations while the study runs; trials.parquet lists them"}
    if space.design is None and search == "random":
        return {"configurations": None, "trials": None,
                "why": "random search without a seed grid samples every trial afresh; trials.parquet lists them"}
    rows = _configurations(space)
    if rows is None:
        return {"configurations": None, "trials": None,
                "why": f"more than {MAX_CHECKED_COMBINATIONS} grid combinations: not listed"}
    return {"configurations": rows, "trials": sum(len(r["seeds"]) for r in rows)}


def _configurations(space: SearchSpace) -> list[dict[str, Any]] | None:
    if space.design is not None:
        seeds = space.seeds()
        out = []
        for row in space.design_rows():
            point = {DESIGN_ID: row[DESIGN_ID], **({"seed": seeds[0]} if seeds else {})}
            cfg = space.resolve(point).to_dict()
            out.append({"configuration": row[DESIGN_ID], "cell": {k: str(v) for k, v in row["cell"].items()},
                        "config": {k: v for k, v in cfg.items() if k != "seed"},
                        "seeds": seeds or [cfg["seed"]]})
        return out
    n = 1
    for d in space.dims.values():
        n *= len(d.values)
    if n > MAX_CHECKED_COMBINATIONS:
        return None
    grouped: dict[str, dict[str, Any]] = {}
    for point in space.combinations():
        cfg = space.resolve(point).to_dict()
        key = json.dumps({k: v for k, v in cfg.items() if k != "seed"}, sort_keys=True, default=str)
        entry = grouped.setdefault(key, {"configuration": len(grouped), "cell": {
            k: str(v) for k, v in point.items() if k != "seed"}, "config": {k: v for k, v in cfg.items() if k != "seed"},
            "seeds": []})
        if cfg["seed"] not in entry["seeds"]:
            entry["seeds"].append(cfg["seed"])
    return list(grouped.values())


def identity(config: dict[str, Any]) -> str:
    """The comparable form of a trial config without its seed (bookkeeping fields dropped, data by name)."""
    out = {}
    for k, v in config.items():
        if k in BOOKKEEPING or k == "seed":
            continue
        if k == "data" and isinstance(v, str):  # by name: `pneumoniamnist` is ../shared/.../pneumoniamnist.npz
            name = Path(v.split(":", 1)[-1] if ":" in v and not v.startswith("/") else v).name or v
            v = name[:-4] if name.endswith(".npz") else name
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        out[k] = v
    return json.dumps(out, sort_keys=True, default=str)


def excluded_pairs(path: Path) -> tuple[set[tuple[str, Any]], int]:
    """((configuration identity, seed) pairs, trial count) of a study directory's trials.parquet."""
    import pandas as pd

    table = path / TRIALS_FILE
    if not table.is_file():
        raise UserError(f"plan excludes {path}, which holds no {TRIALS_FILE}; give the directory of an earlier "
                        "study (e.g. results/belmekki2022_cpu)")
    df = pd.read_parquet(table)
    cols = [c for c in df.columns if c.startswith("config/") and c not in ("config/ttur", "config/design_id")]
    pairs = set()
    defaults = TrialConfig().to_dict()  # a key added after that study ran had its default there
    for rec in df[cols].to_dict("records"):
        cfg = {**defaults, **{c[len("config/"):]: _plain(v) for c, v in rec.items()}}
        pairs.add((identity(cfg), cfg.get("seed")))
    return pairs, len(df)


def check_excludes(record: dict[str, Any], excludes: Sequence[str], *, base: Path = REPO) -> list[dict[str, Any]]:
    """Refuse (UserError naming the overlap) when a (configuration, seed) pair of the design repeats one of an
    excluded study's; return per excluded study what was compared, for study.json."""
    if not excludes:
        return []
    configurations = record.get("configurations")
    if configurations is None:
        raise UserError(f"the plan excludes {', '.join(excludes)} but this study's configurations are not known "
                        f"before it runs ({record.get('why')}); draw them in a design: section")
    out = []
    for ex in excludes:
        path = Path(ex) if Path(ex).is_absolute() else (base / ex if (base / ex).exists() else Path(ex).resolve())
        if not (path / STUDY_FILE).is_file() and not (path / TRIALS_FILE).is_file():
            raise UserError(f"plan excludes {ex}, which is not a study directory (no {STUDY_FILE}); fix the path")
        pairs, n = excluded_pairs(path)
        theirs = {p[0] for p in pairs}
        repeated, reused = [], 0
        for row in configurations:
            key = identity(row["config"])
            reused += key in theirs
            repeated.extend((row["configuration"], s) for s in row["seeds"] if (key, s) in pairs)
        if repeated:
            shown = ", ".join(f"configuration {c} seed {s}" for c, s in repeated[:3])
            raise UserError(f"the plan excludes {ex}, but {len(repeated)} (configuration, seed) pairs of this study "
                            f"repeat its trials ({shown}{', ...' if len(repeated) > 3 else ''}); training is exact, "
                            "so they would re-create its data: use new seeds and new configurations")
        out.append({"study": ex, "trials": n, "repeated_pairs": 0, "configurations_reused": reused})
    return out


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    return v

