"""The two-class task a label sheet becomes: NORMAL = `No Finding`, the positive class = one chosen finding.

Label sheets list many findings per image; a study needs two classes. Three config keys decide which
rows become which class and which are left out (and why): `data_task` (the finding, default Pneumonia),
`data_uncertain` (CheXpert-coded -1.0 labels: exclude | positive | negative) and `data_views`
(frontal = PA or AP | pa | ap | lateral | all). The positive class is named after the finding in capitals
(`Pneumonia` -> PNEUMONIA, `Pleural Effusion` -> PLEURAL_EFFUSION), so the default task gives the
classes every other source has: NORMAL=0, PNEUMONIA=1.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from trainers.errors import DataError

NO_FINDING = "No Finding"
DEFAULT_TASK = "Pneumonia"
UNCERTAIN_POLICIES = ("exclude", "positive", "negative")
VIEW_SETS: dict[str, frozenset[str] | None] = {
    "frontal": frozenset({"PA", "AP", "FRONTAL"}),  # FRONTAL: CheXpert's Frontal/Lateral with AP/PA blank
    "pa": frozenset({"PA"}),
    "ap": frozenset({"AP"}),
    "lateral": frozenset({"LATERAL", "LL", "RL"}),
    "all": None,
}

# Why a row is left out, in the order rows are checked (a row counts once, under its first reason).
OTHER_FINDING = "other finding (neither No Finding nor the task)"
UNCERTAIN = "uncertain label (data_uncertain=exclude)"
VIEW = "view not in data_views"
NO_SPLIT = "in no official split list"
NO_LABEL = "study without a label row"
MISSING_FILE = "missing file"
UNREADABLE = "unreadable"
REASONS = (VIEW, OTHER_FINDING, UNCERTAIN, NO_SPLIT, NO_LABEL, MISSING_FILE, UNREADABLE)


@dataclass(frozen=True)
class Task:
    finding: str = DEFAULT_TASK
    uncertain: str = "exclude"
    views: str = "frontal"

    def view_ok(self, view: str) -> bool:
        allowed = VIEW_SETS[self.views]
        return allowed is None or view.strip().upper() in allowed

    def describe(self, finding: str) -> str:
        views = VIEW_SETS[self.views]
        shown = "any" if views is None else ", ".join(sorted(v for v in views if v != "FRONTAL"))
        return (f"NORMAL = {NO_FINDING}, {class_names(finding)[1]} = {finding}; views {self.views} ({shown}); "
                f"uncertain labels: {self.uncertain}")


def canonical(name: str) -> str:
    """Spelling-insensitive key: `Pleural_Thickening`, `pleural thickening` -> `pleural thickening`."""
    return " ".join(name.replace("_", " ").split()).lower()


def match_finding(task: Task, available: Iterable[str], where: str) -> str:
    """The sheet's own spelling of task.finding; DataError listing the findings `where` has."""
    names = sorted({a for a in available if a and canonical(a) != canonical(NO_FINDING)})
    for a in names:
        if canonical(a) == canonical(task.finding):
            return a
    if not names:
        raise DataError(f"data_task={task.finding!r} is not a finding of {where}: it has no finding but "
                        f"{NO_FINDING}, so it cannot make two classes")
    raise DataError(f"data_task={task.finding!r} is not a finding of {where}; findings there: {', '.join(names)}")


def class_names(finding: str) -> tuple[str, str]:
    return "NORMAL", re.sub(r"[^A-Z0-9]+", "_", finding.upper()).strip("_")


def coded_label(no_finding: float | None, finding: float | None, others_positive: bool, uncertain: str) -> int | str:
    """0 (NORMAL), 1 (the finding) or the reason a row is left out, from CheXpert-coded values.

    Codes: 1.0 present, 0.0 absent, -1.0 uncertain, None blank (not mentioned). An uncertain finding is left
    out (exclude), counted as present (positive), or as absent (negative: the image is then NORMAL when no
    other finding is present, as the CheXpert paper's U-Zeros policy reads it).
    """
    if finding == -1.0:
        if uncertain == "exclude":
            return UNCERTAIN
        if uncertain == "positive":
            return 1
        return 0 if (no_finding == 1.0 or not others_positive) else OTHER_FINDING
    if finding == 1.0:
        return 1
    return 0 if no_finding == 1.0 else OTHER_FINDING
