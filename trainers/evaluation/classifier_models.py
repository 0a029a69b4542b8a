"""Downstream classifiers: build, fit with early stopping, and report on a real test split.

All classifiers output logits (B, num_classes); probabilities come from softmax. For two classes this
is equivalent to seed 000's single sigmoid unit (softmax over two logits = sigmoid of their difference).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from trainers.config import CLASSIFIERS

MIN_STEPS_PER_EPOCH = 20


def build_classifier(name: str, resolution: int, num_classes: int = 2) -> nn.Module:
    """`small_cnn` (fast CPU default), `resnet18` or `vgg16` (seed 000's head), from scratch, 1 channel."""
    if name == "small_cnn":
        layers: list[nn.Module] = []
        cin = 1
        for cout in (32, 64, 128):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            cin = cout
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(cin, num_classes))
    if name == "resnet18":
        from torchvision.models import resnet18

        net = resnet18(weights=None, num_classes=num_classes)
        if resolution <= 64:  # small images: a 3x3 stride-1 stem without max-pool keeps spatial detail
            net.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        else:
            net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        return net
    if name == "vgg16":
        from torchvision.models import vgg16_bn

        features = vgg16_bn(weights=None).features
        features[0] = nn.Conv2d(1, 64, 3, padding=1)
        # Seed 000's head: dropout 0.4, dense + BN + LeakyReLU(0.2), then the output unit(s).
        return nn.Sequential(features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.4), nn.Linear(512, 256),
                             nn.BatchNorm1d(256), nn.LeakyReLU(0.2, inplace=True), nn.Linear(256, num_classes))
    raise ValueError(f"unknown classifier {name!r}; allowed: {', '.join(CLASSIFIERS)}")


def seeded_classifier(name: str, resolution: int, num_classes: int, seed: int) -> nn.Module:
    """The classifier with initial weights drawn from `seed` alone, not from the caller's RNG state: a
    trial's TRTR, TSTR and augment fits with one seed start from the same weights, so their difference is
    the training data's, and a cached baseline does not depend on which trial computed it first."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_classifier(name, resolution, num_classes)


def _shift(x: torch.Tensor, g: torch.Generator, pixels: int) -> torch.Tensor:
    """Random translation by up to `pixels` (no flips: chest X-rays are not left-right symmetric)."""
    if pixels == 0:
        return x
    dx, dy = (int(v) for v in torch.randint(-pixels, pixels + 1, (2,), generator=g))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def fit_classifier(model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
                   val_y: torch.Tensor, *, epochs: int, patience: int, seed: int, device: torch.device | str = "cpu",
                   lr: float = 1e-3, batch_size: int = 0) -> tuple[nn.Module, int]:
    """Adam + cross-entropy; early stopping on validation loss; returns (best model, epochs run).

    `batch_size` 0 picks one that gives every epoch at least MIN_STEPS_PER_EPOCH steps (16..128):
    a few hundred synthetic images in batches of 128 would leave BatchNorm's running statistics,
    and so the evaluation-mode model, far from trained.
    """
    device = torch.device(device)
    # Dropout draws from the global RNG: seed it for this fit, and give the caller its own state back.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return _fit(model, train_x, train_y, val_x, val_y, epochs=epochs, patience=patience, seed=seed,
                    device=device, lr=lr, batch_size=batch_size)


def _fit(model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
         *, epochs: int, patience: int, seed: int, device: torch.device, lr: float, batch_size: int
         ) -> tuple[nn.Module, int]:
    batch_size = batch_size or int(min(128, max(16, len(train_y) // MIN_STEPS_PER_EPOCH)))
    g = torch.Generator().manual_seed(seed)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_loss, bad, ran = copy.deepcopy(model.state_dict()), math.inf, 0, 0
    shift = max(1, train_x.shape[-1] // 16)
    for _ in range(epochs):
        ran += 1
        model.train()
        perm = torch.randperm(len(train_y), generator=g)
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x = _shift(train_x[idx], g, shift).to(device)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), train_y[idx].to(device)).backward()
            opt.step()
        val_loss = F.cross_entropy(predict_logits(model, val_x, device), val_y).item()
        if val_loss < best_loss - 1e-4:
            best, best_loss, bad = copy.deepcopy(model.state_dict()), val_loss, 0
        else:
            bad += 1
            if bad >= patience:
                break
    model.load_state_dict(best)
    return model.eval(), ran


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device | str = "cpu", batch_size: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])


def classification_report(model: nn.Module, x: torch.Tensor, y: np.ndarray, class_names: tuple[str, ...],
                          device: torch.device | str = "cpu") -> dict[str, float]:
    """Accuracy, balanced accuracy, ROC AUC, per-class precision/recall/F1 and confusion matrix (flat keys)."""
    probs = torch.softmax(predict_logits(model, x, device), dim=1).numpy()
    return report_from_probs(np.asarray(y), probs, class_names)


def report_from_probs(y: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...]) -> dict[str, float]:
    from sklearn import metrics

    pred = probs.argmax(axis=1)
    labels = list(range(len(class_names)))
    out = {"accuracy": float(metrics.accuracy_score(y, pred)),
           "balanced_accuracy": float(metrics.balanced_accuracy_score(y, pred)), "n_test": float(len(y))}
    try:
        out["roc_auc"] = float(metrics.roc_auc_score(y, probs[:, 1]) if len(labels) == 2
                               else metrics.roc_auc_score(y, probs, multi_class="ovr", labels=labels))
    except ValueError:  # one class only in y
        out["roc_auc"] = math.nan
    p, r, f, s = metrics.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    cm = metrics.confusion_matrix(y, pred, labels=labels)
    for i, name in enumerate(class_names):
        out[f"precision_{name}"], out[f"recall_{name}"], out[f"f1_{name}"] = float(p[i]), float(r[i]), float(f[i])
        out[f"support_{name}"] = float(s[i])
        for j, other in enumerate(class_names):
            out[f"cm_{name}_{other}"] = float(cm[i, j])
    return out


def format_classification_report(m: dict, class_names: tuple[str, ...], prefix: str = "") -> str:
    """Seed 000's Table 1 layout (class | precision | recall | f1-score | support) and the confusion matrix."""
    rows = ["| class | precision | recall | f1-score | support |", "|---|---|---|---|---|"]
    for c in class_names:
        rows.append(f"| {c} | {m[prefix + 'precision_' + c]:.2f} | {m[prefix + 'recall_' + c]:.2f} | "
                    f"{m[prefix + 'f1_' + c]:.2f} | {int(m[prefix + 'support_' + c])} |")
    rows.append(f"| accuracy | | | {m[prefix + 'accuracy']:.2f} | {int(m[prefix + 'n_test'])} |")
    rows += ["", "| true \\ predicted | " + " | ".join(class_names) + " |", "|---" * (len(class_names) + 1) + "|"]
    for c in class_names:
        rows.append(f"| {c} | " + " | ".join(str(int(m[f"{prefix}cm_{c}_{o}"])) for o in class_names) + " |")
    return "\n".join(rows)
