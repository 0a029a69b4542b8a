"""`gan-study tstr`: train-on-synthetic / test-on-real from one generator per class.

A trial with a conditional generator runs TSTR itself (`downstream=tstr`). This command covers the other
design of seed 000's protocol: one unconditional GAN per class (trials trained with `class_subset`), e.g.

    gan-study tstr --generator NORMAL=runs/normal/trials/<id> --generator PNEUMONIA=runs/pneu/trials/<id> \\
        --n 2000 --out tstr_per_class.json

The classifier is trained on N synthetic images (labels in the real training split's class ratio),
validated on held-out synthetic images (or real val) and tested on the real test split; the TRTR
baseline (cached) is reported next to it. Writes a JSON of `tstr_*` and `trtr_*` metrics.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainers import metric_keys as K
from trainers.atomic import atomic_path
from trainers.config import CLASSIFIERS, TSTR_VALIDATION
from trainers.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", action="append", required=True, metavar="CLASS=TRIAL",
                        help="a class name and the trial directory or checkpoint of its generator; once per class")
    parser.add_argument("--n", type=int, default=2000, help="synthetic training images in total (default: %(default)s)")
    parser.add_argument("--data", default="", help="real data for val/test and the class ratio "
                                                    "(default: the generators' training data)")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default="small_cnn")
    parser.add_argument("--epochs", type=int, default=8, help="classifier epochs (early stopping)")
    parser.add_argument("--patience", type=int, default=2, help="early-stopping patience in epochs")
    parser.add_argument("--validation", choices=TSTR_VALIDATION, default="synthetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--out", required=True, help="JSON file for the metrics")


def parse_generators(specs: list[str]) -> dict[str, str]:
    """['NORMAL=dir', ...] -> {'NORMAL': 'dir'}; one clear error for a malformed or repeated class."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--generator {spec!r} must be CLASS=TRIAL_DIR, e.g. NORMAL=runs/x/trials/abc")
        if name in out:
            raise UserError(f"--generator gives class {name!r} twice")
        out[name] = path
    return out


def run(generators: dict[str, str], *, n: int, data: str = "", classifier: str = "small_cnn", epochs: int = 8,
        patience: int = 2, validation: str = "synthetic", seed: int = 0, device: str = "cpu") -> dict:
    """TSTR and TRTR metrics for one generator per class (class name -> trial dir or checkpoint)."""
    from study.generate_command import load_generator
    from trainers.evaluation.protocols import per_class_sampler, real_splits, trtr_baseline, tstr

    loaded = {name: load_generator(path, device)[:2] for name, path in generators.items()}
    first = next(iter(loaded.values()))[1]
    resolutions = {name: c.resolution for name, (_, c) in loaded.items()}
    if len(set(resolutions.values())) > 1:
        raise UserError(f"the generators have different resolutions {resolutions}; TSTR needs one")
    for name, (_, c) in loaded.items():
        if c.class_subset and c.class_subset != name:
            raise UserError(f"--generator {name}=... was trained on class_subset={c.class_subset!r}, not {name!r}")
    cfg = first.replace(data=data or first.data, downstream="", classifier=classifier, classifier_epochs=epochs,
                        classifier_patience=patience, tstr_samples=n, tstr_validation=validation, seed=seed,
                        class_subset="", conditioning="none", data_limit=0, device=device)
    real_train, real_val, real_test = real_splits(cfg)
    names = real_train.class_names
    missing = [c for c in names if c not in loaded]
    unknown = [c for c in loaded if c not in names]
    if missing or unknown:
        raise UserError(f"--generator must name each class of {cfg.data} exactly once: "
                        f"classes {', '.join(names)}; missing {missing or 'none'}, unknown {unknown or 'none'}")
    sampler = per_class_sampler({names.index(c): g for c, g in loaded.items()}, device)
    metrics = {K.TRTR_PREFIX + k: v for k, v in trtr_baseline(cfg, real_train, real_val, real_test, device).items()}
    metrics.update(tstr(cfg, sampler, real_train, real_val, real_test, device))
    metrics.update(generators={c: str(p) for c, p in generators.items()}, data=cfg.data,
                   resolution=cfg.resolution, classifier=classifier, tstr_samples=n, tstr_validation=validation)
    return metrics


def main(args: argparse.Namespace) -> int:
    from trainers.evaluation.classifier_models import format_classification_report

    if args.n < 2:
        raise UserError(f"--n {args.n} must be >= 2")
    metrics = run(parse_generators(args.generator), n=args.n, data=args.data, classifier=args.classifier,
                  epochs=args.epochs, patience=args.patience, validation=args.validation, seed=args.seed,
                  device=args.device)
    out = Path(args.out).expanduser()
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    precision = K.TSTR_PREFIX + "precision_"
    names = tuple(k[len(precision):] for k in metrics if k.startswith(precision))
    if names:  # absent when a generator produced non-finite images (NaN metrics, downstream_error)
        print(format_classification_report(metrics, names, prefix=K.TSTR_PREFIX))
    print(f"TSTR accuracy {metrics['tstr_accuracy']:.3f} (TRTR {metrics['trtr_accuracy']:.3f}); wrote {out}")
    return 0
