"""Verdicts that say what was tested: the direction of an effect and its magnitude, judged separately.

- **direction reproduced**: the 95% CI excludes the null on the paper's side *and* the test's q (its p
  where the claim is tested alone) is <= alpha; with the paper's value given, the magnitude is judged too:
  **direction reproduced, magnitude consistent** (the CI includes the paper's value) or **direction
  reproduced, magnitude differs** (it does not);
- **contradicted**: the CI excludes the null on the other side, q <= alpha;
- **inconclusive**: the CI includes the null, or it excludes it while q > alpha (nothing is called
  reproduced at q > alpha: a bootstrap CI of a few configurations runs narrow);
- **not comparable**: no interval (too few units) or measured differently (decided by the caller).
"""
from __future__ import annotations

import math

REPRODUCED = "direction reproduced"
CONSISTENT = "direction reproduced, magnitude consistent"
DIFFERS = "direction reproduced, magnitude differs"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_COMPARABLE = "not comparable"
VERDICTS = (CONSISTENT, DIFFERS, REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_COMPARABLE)


def verdict(lo: float, hi: float, expected_sign: int, null: float = 0.0, p: float = math.nan, *,
            q: float = math.nan, alpha: float = 0.05, paper: float = math.nan) -> tuple[str, str]:
    """(verdict, why) of an interval [lo, hi] against a claim that the effect lies on `expected_sign`'s side
    of `null`; `q` (else `p`) must be <= alpha for any directional verdict; `paper` is the claimed value."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return NOT_COMPARABLE, "too few configurations or seeds for an interval"
    sig, name = (q, "q") if math.isfinite(q) else (p, "p")
    below, above = hi < null, lo > null
    if not (below or above):
        return INCONCLUSIVE, f"the CI includes {null:g}: no evidence either way at this size"
    if math.isfinite(sig) and sig > alpha:
        return INCONCLUSIVE, f"the CI excludes {null:g} but {name} = {sig:.3g} > {alpha:g}"
    tested = f"{name} = {sig:.3g} <= {alpha:g}" if math.isfinite(sig) else "judged on the CI alone: no test p"
    if (1 if above else -1) != expected_sign:
        return CONTRADICTED, f"the CI excludes {null:g} on the opposite side ({tested})"
    if not math.isfinite(paper):
        return REPRODUCED, f"the CI excludes {null:g} on the paper's side ({tested})"
    if lo <= paper <= hi:
        return CONSISTENT, f"the CI excludes {null:g} on the paper's side ({tested}) and includes its {paper:g}"
    return DIFFERS, (f"the CI excludes {null:g} on the paper's side ({tested}) but not the paper's {paper:g}: "
                     "its size is not reproduced")


def is_reproduced(label: str) -> bool:
    """True for the three directional verdicts on the paper's side."""
    return label.startswith(REPRODUCED)
