"""Read any chest X-ray file as an 8-bit grayscale array, and preprocess it to the trial resolution.

Real X-ray files come in many forms: 8- and 16-bit grayscale PNG (16-bit and float images are
scaled by their own min..max range, never clipped), RGB/RGBA/palette images (converted to
luminance; alpha ignored), JPEG, and DICOM (rescale slope/intercept applied, MONOCHROME1 inverted).
Resizing is one fixed method everywhere: PIL bicubic, which antialiases when downsampling.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from trainers.errors import DataError

RESAMPLE = Image.BICUBIC  # the one resize method: antialiased (PIL widens the kernel when reducing)
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, what PIL's convert("L") uses


def read_grayscale(path: Path) -> np.ndarray:
    """uint8 (H, W) for any supported file; DataError naming the file when it cannot be read."""
    try:
        if path.suffix.lower() in (".dcm", ".dicom") or _has_dicom_magic(path):
            return _read_dicom(path)
        with Image.open(path) as im:
            im.load()  # force a full decode so truncated files fail here, not later
            return _to_uint8(im)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc.__class__.__name__}: {exc}") from None


def preprocess(gray: np.ndarray, resolution: int, hist_eq: bool) -> np.ndarray:
    """Antialiased resize to (resolution, resolution), then optional histogram equalisation (seed 001)."""
    im = Image.fromarray(gray)
    if im.size != (resolution, resolution):
        im = im.resize((resolution, resolution), RESAMPLE)
    if hist_eq:
        im = ImageOps.equalize(im)
    return np.asarray(im, dtype=np.uint8)


def _to_uint8(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return scale_by_range(np.asarray(im, dtype=np.float64))
    if im.mode != "L":
        im = im.convert("L")  # RGB, RGBA (alpha dropped), P (palette), 1, LA, CMYK -> luminance
    return np.asarray(im, dtype=np.uint8)


def scale_by_range(a: np.ndarray) -> np.ndarray:
    """Map the array's own min..max to 0..255 (a flat image maps to 0)."""
    a = a.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.round((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _has_dicom_magic(path: Path) -> bool:
    if path.suffix:
        return False
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom

    try:
        ds = pydicom.dcmread(str(path))
        pixels = ds.pixel_array.astype(np.float64)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for bad files
        raise DataError(f"cannot read DICOM {path}: {exc.__class__.__name__}: {exc}") from None
    if pixels.ndim == 4:  # multi-frame colour: first frame
        pixels = pixels[0]
    if pixels.ndim == 3:  # RGB (samples last) -> luminance; multi-frame grayscale -> first frame
        pixels = pixels[..., :3] @ np.array(LUMA) if pixels.shape[-1] in (3, 4) else pixels[0]
    pixels = pixels * float(getattr(ds, "RescaleSlope", 1) or 1) + float(getattr(ds, "RescaleIntercept", 0) or 0)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        pixels = pixels.max() - pixels  # MONOCHROME1: high values are dark
    return scale_by_range(pixels)
