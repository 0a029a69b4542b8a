"""Procedural chest-radiograph phantoms: the embedded default data set.

A PIPELINE CHECK, NOT MEDICAL DATA. It lets the whole study run on any fresh offline machine and
gives the GAN and the classifiers a learnable two-class problem with radiograph-like structure:
a bright body silhouette with shoulders, two dark lung fields, spine, heart shadow, clavicles and
ribs, film grain. Class 0 (NORMAL) has clear lungs; class 1 (PNEUMONIA) adds patchy, blurred
opacities inside the lung fields. Every image is a deterministic function of (seed, split, index).

Split sizes are fixed (`SPLIT_SIZES`); about 26% of each split is NORMAL, as in the Kaggle data.
"""
from __future__ import annotations

import numpy as np

VERSION = 1  # bump when the rendering changes: it is part of the cache key
SPLIT_SIZES = {"train": 2000, "val": 400, "test": 400}
NORMAL_FRACTION = 0.26
CLASS_NAMES = ("NORMAL", "PNEUMONIA")
_CHUNK = 128  # images rendered at once; bounds memory
MAX_NATIVE = 128  # larger phantoms are rendered at 128 px and upsampled: the shapes are smooth anyway


def phantom_split(split: str, resolution: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, R, R), labels int64 (N,)) for one split."""
    n = SPLIT_SIZES[split]
    rng = np.random.default_rng([seed, list(SPLIT_SIZES).index(split), VERSION])
    labels = (rng.random(n) >= NORMAL_FRACTION).astype(np.int64)
    native = min(resolution, MAX_NATIVE)
    chunks = [
        render(labels[i:i + _CHUNK], native, np.random.default_rng([seed, list(SPLIT_SIZES).index(split), i]))
        for i in range(0, n, _CHUNK)
    ]
    images = np.concatenate(chunks)
    if native != resolution:
        from PIL import Image

        images = np.stack([np.asarray(Image.fromarray(im).resize((resolution, resolution), Image.BICUBIC))
                           for im in images])
    return images, labels


def render(labels: np.ndarray, resolution: int, rng: np.random.Generator) -> np.ndarray:
    """Render one phantom per label, vectorised over the batch."""
    n = len(labels)
    axis = np.linspace(-1, 1, resolution, dtype=np.float32)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    y, x = y[None], x[None]

    def p(low: float, high: float) -> np.ndarray:  # one random parameter per image, broadcastable
        return rng.uniform(low, high, (n, 1, 1)).astype(np.float32)

    img = np.full((n, resolution, resolution), 0.05, dtype=np.float32)
    # Body: a wide ellipse (chest wall) plus the shoulders at the top.
    cx = p(-0.04, 0.04)
    body = _soft(((x - cx) / p(0.80, 0.92)) ** 2 + ((y - 0.15) / p(0.95, 1.05)) ** 2, 0.08)
    shoulders = _soft(((x - cx) / 1.05) ** 2 + ((y + 0.75) / 0.35) ** 2, 0.1)
    img += 0.55 * np.maximum(body, shoulders)
    # Lungs: two dark fields, slightly asymmetric (the heart takes room on the left lung).
    lungs = np.zeros_like(img)
    for side, width in ((-1, p(0.27, 0.33)), (1, p(0.24, 0.30))):
        lx = cx + side * p(0.33, 0.40)
        lung = _soft(((x - lx) / width) ** 2 + ((y - p(0.0, 0.1)) / p(0.55, 0.65)) ** 2, 0.15)
        lungs = np.maximum(lungs, lung)
    img -= 0.42 * lungs
    # Ribs: bright curved bands across the lung fields, one phase per image.
    freq, phase = p(7.5, 9.0), p(0, 2 * np.pi)
    ribs = np.clip(np.sin(freq * (y + 0.25 * x**2) * np.pi / 2 + phase), 0, None) ** 6
    img += 0.12 * ribs * lungs
    # Spine and mediastinum: a vertical bright band; heart: a bright blob low and to the (image) right.
    img += 0.25 * _soft((x - cx) ** 2 / p(0.006, 0.010), 0.5) * body
    heart = _soft(((x - cx - p(0.08, 0.16)) / p(0.22, 0.28)) ** 2 + ((y - p(0.30, 0.40)) / p(0.22, 0.28)) ** 2, 0.2)
    img += 0.30 * heart * body
    # Clavicles: two thin bright bars near the top.
    for side in (-1, 1):
        clav = _soft(((y + 0.55 - 0.18 * np.abs(x - cx)) / 0.035) ** 2, 0.5) * (np.abs(x - cx - side * 0.35) < 0.35)
        img += 0.18 * clav
    # Pneumonia: patchy opacities — blurred random blobs confined to the lung fields.
    sick = labels.astype(bool)
    if sick.any():
        patches = np.zeros_like(img)
        for _ in range(4):
            bx, by = p(-0.7, 0.7), p(-0.35, 0.5)
            r = p(0.10, 0.22)
            strength = p(0.15, 0.35) * (rng.random((n, 1, 1)) < 0.8)
            patches += strength * np.exp(-(((x - bx) ** 2 + (y - by) ** 2) / (2 * r**2)))
        texture = 0.6 + 0.4 * np.sin(p(10, 16) * x + p(0, 6)) * np.sin(p(10, 16) * y + p(0, 6))
        img += np.where(sick[:, None, None], patches * texture * lungs, 0.0)
    # Film grain, exposure and contrast variation.
    img = img * p(0.85, 1.15) + p(-0.05, 0.05) + rng.normal(0, 0.025, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _soft(r2: np.ndarray, edge: float) -> np.ndarray:
    """1 inside the unit level set of r2, 0 outside, with a smooth edge of relative width `edge`."""
    return 1.0 / (1.0 + np.exp(np.minimum((r2 - 1.0) / edge, 60.0)))
