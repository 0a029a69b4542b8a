"""findings' one-paragraph summary of the small-data levers study (analysis.findings_levers.levers_in_short)."""
from __future__ import annotations

import math

import pandas as pd

from analysis.confirmatory import Confirmatory
from analysis.findings_levers import levers_in_short


def _conf(rows: list[tuple[str, str, float, str]], trials: int = 48, expected: int = 48) -> Confirmatory:
    fam = pd.DataFrame(rows, columns=["within", "level", "diff", "verdict"]).assign(family="primary")
    side = fam.iloc[:1].assign(family="secondary", level="lecam", diff=-5.0, verdict="lower than the reference")
    return Confirmatory(cells=["data_limit"], columns=["config/data_limit"], trials=trials, configurations=16,
                        expected_trials=expected, primary=None, contrasts=pd.concat([fam, side]))


def test_counts_each_verdict_per_size_and_names_the_called_levers() -> None:
    conf = _conf([("0", "ema", -0.5, "lower than the reference"),
                  ("0", "r1", 0.6, "against the prediction: higher than the reference"),
                  ("0", "ada", 0.01, "equivalent within +-0.35"),
                  ("500", "ema", -0.1, "inconclusive"),
                  ("500", "diffaug", -0.9, "lower than the reference"),
                  ("500", "lecam", -0.2, "inconclusive")])
    text = levers_in_short(conf)
    full, small = text.split("; ")
    assert "with all 4,708 training images, 1 of 3 levers lowered FID" in full
    assert f"ema x{math.exp(-0.5):.2f}" in full and "1 raised it (95% CI above 0), 1 were equivalent" in full
    assert "with 500 training images, 1 of 3 levers" in small and "diffaug x0.41" in small
    assert "0 raised it (95% CI above 0), 0 were equivalent" in small and "lowest ratio: diffaug" in small
    # The secondary family (another outcome) never enters the FID summary.
    assert "x0.01" not in text and "48 trials" in text


def test_an_incomplete_study_gives_no_verdicts() -> None:
    text = levers_in_short(_conf([("0", "ema", -2.0, "lower than the reference")], trials=20))
    assert "under way (20 of 48 trials)" in text and "lowered" not in text
    assert levers_in_short(None) == "The small-data levers study has no results yet."


def test_a_secondary_confirmed_on_its_own_p_is_inconclusive_when_its_q_is_above_alpha() -> None:
    from analysis.confirm import CONFIRMED, EQUIVALENT
    from analysis.confirmatory import secondary_verdict

    assert secondary_verdict(CONFIRMED, 0.054, 0.05).startswith("inconclusive (p <= 0.05 alone; q > 0.05")
    assert secondary_verdict(CONFIRMED, 0.04, 0.05) == CONFIRMED
    assert secondary_verdict(EQUIVALENT, 0.9, 0.05) == EQUIVALENT
    assert secondary_verdict("", 0.04, 0.05) == "significant" and secondary_verdict("", 0.2, 0.05) == "not significant"
