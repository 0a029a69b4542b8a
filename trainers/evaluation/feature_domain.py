"""Chest-X-ray domain feature extractor: a small CNN trained by the project on the real training split.

ImageNet features may not suit radiographs, so the default extractor is trained on the task itself
(NORMAL vs PNEUMONIA). It is one yardstick per (data source, resolution, pixel preprocessing): trained
on the source's whole labelled training split (`load_reference_split`: every class, independent of a
trial's seed, class subset, data limit and validation carve) and named by that key, so every trial on
one dataset is measured by the same extractor. Features are its penultimate layer (DOMAIN_FEATURES wide,
after ReLU). It works offline. Values computed with it are named "domain-<R>px[-histeq]-<key>-<dim>d"
and are only comparable with values from the same extractor.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from trainers.atomic import atomic_path, build_lock
from trainers.evaluation import defaults as D
from trainers.evaluation.weights_hash import weights_sha256

VERSION = 3  # bump when the architecture or training changes: part of the cache key


class DomainCNN(nn.Module):
    """Stem (stride 2 above 32 px, so cost stays flat with resolution), three conv blocks, GAP, 128-d."""

    def __init__(self, num_classes: int = 2, features: int = D.DOMAIN_FEATURES, resolution: int = 64):
        super().__init__()
        stride = 2 if resolution > 32 else 1
        layers: list[nn.Module] = [nn.Conv2d(1, 16, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(16),
                                   nn.ReLU(inplace=True)]
        cin = 16
        for cout in (32, 64, 128):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            cin = cout
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(cin, features), nn.ReLU(inplace=True))
        self.head = nn.Linear(features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class DomainExtractor:
    """Callable: images (N, 1, R, R) in [-1, 1] -> features (N, DOMAIN_FEATURES) float32 numpy.

    `train_set` is the yardstick's training data: pass `load_reference_split(...)` (all classes) so the
    extractor is the dataset's, not a trial's; its fingerprint names the extractor.
    """

    def __init__(self, train_set, cache_dir: Path, device: torch.device | str = "cpu", seed: int = 0,
                 hist_eq: bool = False):
        self.device = torch.device(device)
        key = hashlib.sha1(f"{VERSION}|{train_set.fingerprint}|{train_set.images.shape}|{seed}".encode()).hexdigest()[:10]
        res = train_set.images.shape[-1]
        self.name = f"domain-{res}px{'-histeq' if hist_eq else ''}-{key}-{D.DOMAIN_FEATURES}d"
        self.dim = D.DOMAIN_FEATURES
        path = Path(cache_dir) / "extractors" / f"{self.name}.pt"
        # Seeded initialisation and training in a forked RNG: every process and node builds the same
        # extractor whatever it ran before, and building it leaves the trial's random stream untouched.
        with build_lock(path), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = DomainCNN(num_classes=len(train_set.class_names), resolution=train_set.images.shape[-1])
            self.trained_now = not path.is_file()
            if self.trained_now:
                # One thread: float reductions summed in another order give other weights, so an extractor built by
                # a 2-thread driver (gan-study yardstick) and by a 1-thread trial would differ under one name.
                threads = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    _train(self.model, train_set, seed)
                finally:
                    torch.set_num_threads(threads)
                with atomic_path(path) as tmp:
                    torch.save(self.model.state_dict(), tmp)
            else:
                self.model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.model.to(self.device).eval()
        self.weights_sha256 = weights_sha256(self.model)
        self.train_n = int(len(train_set))  # recorded with every FID: a tiny training set makes a weak yardstick

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        out = [self.model.features(images[i:i + batch_size].to(self.device).float()).cpu()
               for i in range(0, images.shape[0], batch_size)]
        return torch.cat(out).numpy().astype(np.float32)


def _train(model: DomainCNN, train_set, seed: int) -> None:
    """A few epochs of Adam on the real split; seeded so every node trains the same extractor."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = train_set.to_tensor()
    y = torch.as_tensor(train_set.labels, dtype=torch.long)
    # Class-balanced loss: the minority class (NORMAL) must shape the features too.
    weights = torch.as_tensor(len(y) / (np.bincount(y.numpy(), minlength=model.head.out_features) + 1.0),
                              dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss(weight=weights / weights.mean())
    model.train()
    for _ in range(D.DOMAIN_EPOCHS):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), D.DOMAIN_BATCH):
            idx = perm[i:i + D.DOMAIN_BATCH]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
