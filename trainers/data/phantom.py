"""Procedural chest-radiograph phantoms: the embedded default data set ("phantom").

A PIPELINE CHECK, NOT MEDICAL DATA. It lets the whole study run on a fresh offline machine and gives
the GAN and the classifiers a learnable two-class problem with radiograph-like structure: a bright
torso with neck and shoulders on a dark background, two dark lung fields with rounded apices,
diaphragm domes and costophrenic angles, mediastinum, spine, heart shadow, clavicles, posterior and
anterior ribs, vessel markings radiating from the hila, film grain, and per-image pose, exposure and
contrast. Class 0 NORMAL has clear lungs; class 1 PNEUMONIA adds patchy, fluffy opacities (lobar or
multifocal) inside the lung fields, which brighten them. Learnable but not trivial: the downstream
small CNN reaches ~0.92 test accuracy at 32 px after 15 epochs on the full train split (0.75-0.8
after 3 epochs), so TRTR/TSTR on phantoms exercise the code, not medicine.

Every image is a deterministic function of (seed, split). Split sizes are fixed (`SPLIT_SIZES`) and
exactly `NORMAL_COUNTS` of each split are NORMAL (~1:2.9, the Kaggle train ratio), shuffled.
Images are rendered directly at the requested size up to MAX_NATIVE px (larger ones are rendered at
MAX_NATIVE and resized with the loader's one resize method). Bump VERSION when the rendering changes:
it is part of every cache key.
"""
from __future__ import annotations

import numpy as np

VERSION = 2
CLASS_NAMES = ("NORMAL", "PNEUMONIA")
SPLIT_SIZES = {"train": 2000, "val": 400, "test": 400}
NORMAL_COUNTS = {"train": 512, "val": 102, "test": 102}  # 25.6% NORMAL; Kaggle train: 1341/5216 = 25.7%
MAX_NATIVE = 256
_CHUNK = 64  # images rendered at once: bounds memory (about 20 float arrays of CHUNK x R x R)


def phantom_split(split: str, resolution: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, R, R), labels int64 (N,)) for one split."""
    n, split_id = SPLIT_SIZES[split], list(SPLIT_SIZES).index(split)
    labels = np.ones(n, dtype=np.int64)
    labels[: NORMAL_COUNTS[split]] = 0
    labels = np.random.default_rng([VERSION, seed, split_id]).permutation(labels)
    native = min(resolution, MAX_NATIVE)
    images = np.concatenate([
        render(labels[i:i + _CHUNK], native, np.random.default_rng([VERSION, seed, split_id, i]))
        for i in range(0, n, _CHUNK)
    ])
    if native != resolution:
        from trainers.data.decode import preprocess

        images = np.stack([preprocess(im, resolution, False) for im in images])
    return images, labels


def render(labels: np.ndarray, resolution: int, rng: np.random.Generator) -> np.ndarray:
    """One phantom per label, vectorised over the batch: uint8 (N, R, R).

    Coordinates run over [-1, 1]: x left to right, y top to bottom. Brightness adds up like
    attenuation: air dark, soft tissue grey, bone bright.
    """
    n = len(labels)

    def p(low: float, high: float) -> np.ndarray:  # one random value per image, broadcast over pixels
        return rng.uniform(low, high, (n, 1, 1)).astype(np.float32)

    # Pose: each patient is shifted, scaled and slightly rotated; anatomy is drawn in (X, Y).
    axis = np.linspace(-1, 1, resolution, dtype=np.float32)
    y0, x0 = np.meshgrid(axis, axis, indexing="ij")
    theta, scale = p(-0.06, 0.06), p(0.90, 1.04)
    xs, ys = x0[None] - p(-0.05, 0.05), y0[None] - p(-0.04, 0.06)
    X = (xs * np.cos(theta) + ys * np.sin(theta)) / scale
    Y = (-xs * np.sin(theta) + ys * np.cos(theta)) / scale
    ax = np.abs(X)
    e = 0.02  # edge softness in coordinate units (about one pixel at 64 px)

    # Torso: neck at the top, sloping shoulders, then the chest wall; thickest (brightest) in the middle.
    half_width = 0.24 + p(0.60, 0.68) * _sig((Y + 0.80) / 0.07) + 0.04 * np.clip(Y, 0, 1)
    torso = _sig((half_width - ax) / 0.03)
    img = 0.05 + p(0.40, 0.48) * torso * (0.85 + 0.15 * np.clip(1 - (X / half_width) ** 2, 0, 1))

    # Lungs: from the mediastinum out to a lateral edge that rounds off at the apex; domed bases
    # with sharp costophrenic angles (the image-left dome sits higher, as the liver pushes it up).
    lungs = np.zeros_like(X)
    for side, base in ((-1, p(0.28, 0.38)), (1, p(0.34, 0.44))):
        top, reach = p(-0.74, -0.66), p(0.60, 0.70)
        u = np.clip((Y - top) / (base - top), 0, 1)
        lateral = reach * np.sqrt(1 - (1 - u) ** 3)
        d = side * X - 0.04  # distance from the midline towards this side
        dome = base - 0.16 * np.clip(1 - ((d - 0.5 * reach) / (0.55 * reach)) ** 2, 0, 1)
        lungs = lungs + _sig((lateral - d) / e) * _sig(d / e) * _sig((dome - Y) / e) * _sig((Y - top) / e)
    # Heart and mediastinum hide the medial lung; the heart bulges to the image right.
    heart = _soft_ellipse(X - p(0.10, 0.16), Y - p(0.26, 0.32), p(0.28, 0.34), p(0.22, 0.27), e)
    mediastinum = _sig((p(0.09, 0.12) - np.abs(X - 0.02)) / e) * _sig((0.3 - Y) / 0.1)
    air = np.clip(lungs, 0, 1) * (1 - heart) * (1 - mediastinum)
    img += 0.05 * heart + 0.04 * mediastinum - p(0.30, 0.36) * air

    # Spine (with vertebral bodies) down the middle, faint through the heart.
    vertebrae = 0.75 + 0.25 * np.cos(2 * np.pi * (Y / p(0.085, 0.10) + p(0, 1)))
    img += 0.10 * _sig((0.055 - np.abs(X - 0.01)) / 0.015) * vertebrae * torso

    # Ribs inside the thorax: posterior arcs (convex upward) and fainter anterior ribs sloping down medially.
    thorax = _sig((0.80 - ax) / 0.05) * _sig((0.42 - Y) / 0.06) * _sig((Y + 0.80) / 0.04)
    spacing = p(0.12, 0.14) * (1 + 0.3 * np.clip(Y + 0.5, 0, None))
    posterior = np.cos(2 * np.pi * ((Y + 0.35 * ax - 0.7 * ax**2) / spacing + p(0, 1)))
    anterior = np.cos(2 * np.pi * ((Y + 0.5 * ax) / (1.2 * spacing) + p(0, 1)))
    ribs = 0.08 * _sig((posterior - 0.5) / 0.1) + 0.035 * _sig((anterior - 0.6) / 0.1) * (ax > 0.15)
    # Soft tissue hides ribs: they stand out over the lungs.
    img += ribs * thorax * (0.35 + 0.65 * np.clip(lungs, 0, 1)) * (1 - 0.8 * mediastinum)

    # Clavicles: bright bars from the sternal notch out and up to the shoulders.
    for side in (-1, 1):
        img += 0.15 * _segment(X, Y, (side * 0.07, -0.60), (side * 0.64, -0.76), 0.035, e) * torso

    # Vessel markings: zero-crossings of smooth noise read as branching lines, densest near the hila.
    hila = np.exp(-(((ax - 0.2) / 0.3) ** 2 + ((Y + 0.05) / 0.35) ** 2))
    vessels = np.exp(-(_smooth_noise(rng, n, resolution, 14) / 0.22) ** 2)
    img += 0.07 * vessels * hila * air

    # Pneumonia: a fluffy consolidation in one lung (every case) plus patchy multifocal opacities.
    sick = labels.astype(bool)[:, None, None]
    if sick.any():
        texture = _smooth_noise(rng, n, resolution, 6)
        side = np.where(rng.random((n, 1, 1)) < 0.6, -1.0, 1.0)  # the image-left (right) lung more often
        focus = _soft_ellipse(X - side * p(0.25, 0.50), Y - p(-0.35, 0.20), p(0.14, 0.24), p(0.14, 0.26), 0.1)
        focus = focus * np.clip(0.75 + 0.35 * texture, 0, 1)
        band = np.exp(-(((Y - p(-0.3, 0.25)) / p(0.3, 0.6)) ** 2)) * (rng.random((n, 1, 1)) < 0.6)
        patches = band * np.clip(texture + p(-0.2, 0.6), 0, 1)
        opacity = p(0.24, 0.36) * np.maximum(focus, patches) * np.clip(lungs, 0, 1) * (1 - 0.5 * heart)
        img += np.where(sick, opacity, 0.0)

    # Exposure: contrast curve, gain, offset, a side-to-side gradient, film grain.
    img = np.clip(img, 0, 1) ** p(0.85, 1.2) * p(0.9, 1.1) + p(-0.04, 0.04) + p(-0.04, 0.04) * x0[None]
    img += rng.normal(0, 0.018, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _sig(t: np.ndarray) -> np.ndarray:
    """Logistic step: a soft inside (1) / outside (0) indicator."""
    return 0.5 + 0.5 * np.tanh(0.5 * t)


def _soft_ellipse(dx: np.ndarray, dy: np.ndarray, rx: np.ndarray, ry: np.ndarray, e: float) -> np.ndarray:
    r = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
    return _sig((1 - r) * np.minimum(rx, ry) / e)


def _segment(X: np.ndarray, Y: np.ndarray, a: tuple, b: tuple, half_width: float, e: float) -> np.ndarray:
    """Soft bar of the given half width around the segment a-b."""
    (ax_, ay), (bx, by) = a, b
    dx, dy = bx - ax_, by - ay
    t = np.clip(((X - ax_) * dx + (Y - ay) * dy) / (dx * dx + dy * dy), 0, 1)
    dist = np.sqrt((X - ax_ - t * dx) ** 2 + (Y - ay - t * dy) ** 2)
    return _sig((half_width - dist) / (0.5 * e))


def _smooth_noise(rng: np.random.Generator, n: int, resolution: int, cells: int) -> np.ndarray:
    """Unit-variance smooth random field (N, R, R) with about `cells` blobs across the image.

    A coarse Gaussian grid is interpolated with a Gaussian kernel as two matrix products,
    so the cost is independent of the kernel size.
    """
    grid = rng.standard_normal((n, cells + 2, cells + 2)).astype(np.float32)
    knots = np.linspace(-1 - 2 / cells, 1 + 2 / cells, cells + 2, dtype=np.float32)
    pix = np.linspace(-1, 1, resolution, dtype=np.float32)
    k = np.exp(-0.5 * ((pix[:, None] - knots[None]) / (1.0 / cells)) ** 2)
    k /= np.sqrt((k**2).sum(axis=1, keepdims=True))  # unit L2 rows keep the field at unit variance
    return k @ grid @ k.T
