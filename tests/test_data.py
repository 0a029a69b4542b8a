"""Data: phantom, MedMNIST npz, the Kaggle tree, every image form, the decode-once cache, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from trainers.data import folder, load_split
from trainers.data.decode import read_grayscale
from trainers.errors import DataError


# ---------------------------------------------------------------- phantom
def test_phantom_is_deterministic_two_class_and_any_resolution(tmp_path):
    a = load_split("phantom", "train", 32, cache_dir=tmp_path / "a")
    b = load_split("phantom", "train", 32, cache_dir=tmp_path / "b")
    np.testing.assert_array_equal(a.images, b.images)
    assert a.class_names == ("NORMAL", "PNEUMONIA") and len(a) == 2000
    assert 0.2 < a.class_counts()["NORMAL"] / len(a) < 0.32
    other_seed = load_split("phantom", "train", 32, seed=1, cache_dir=tmp_path / "a")
    assert not np.array_equal(a.images, other_seed.images)
    # Opacities brighten the lung fields: a simple statistic separates the classes.
    lungs = a.images[:, 12:24, 6:26].reshape(len(a), -1).astype(float).mean(axis=1)
    assert lungs[a.labels == 1].mean() > lungs[a.labels == 0].mean() + 3
    for r in (64, 128):
        assert load_split("phantom", "test", r, cache_dir=tmp_path / "a").images.shape == (400, r, r)


# ---------------------------------------------------------------- real data
def test_pneumoniamnist_npz_counts_and_resize(pneumoniamnist_npz, tmp_path):
    ds = load_split(str(pneumoniamnist_npz), "train", 28, cache_dir=tmp_path)
    assert ds.class_counts() == {"NORMAL": 1214, "PNEUMONIA": 3494}
    raw = np.load(pneumoniamnist_npz)["train_images"]
    np.testing.assert_array_equal(ds.images, raw)  # native size: untouched
    ds64 = load_split(str(pneumoniamnist_npz), "test", 64, cache_dir=tmp_path)
    assert ds64.images.shape == (624, 64, 64) and ds64.class_counts() == {"NORMAL": 234, "PNEUMONIA": 390}
    t = ds64.to_tensor()
    assert t.shape == (624, 1, 64, 64) and t.min() >= -1 and t.max() <= 1
    normal = load_split(str(pneumoniamnist_npz), "train", 32, class_subset="NORMAL", cache_dir=tmp_path)
    assert len(normal) == 1214 and set(normal.labels) == {0}


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    from conftest import SHARED_DATA

    chest_xray_dir = SHARED_DATA / "chest_xray"
    if not (chest_xray_dir / "train").is_dir():
        pytest.skip(f"real data not available: {chest_xray_dir}")
    cache = tmp_path_factory.mktemp("kaggle-cache")
    return {s: load_split(str(chest_xray_dir), s, 32, cache_dir=cache) for s in ("train", "val", "test")}, cache


def test_kaggle_tree_patient_grouped_validation(kaggle):
    splits, _ = kaggle
    train, val, test = splits["train"], splits["val"], splits["test"]
    assert len(train) + len(val) == 5216
    assert 0.08 < len(val) / 5216 < 0.13 and min(val.class_counts().values()) > 50
    assert not set(train.patient_ids) & set(val.patient_ids)
    assert test.class_counts() == {"NORMAL": 234, "PNEUMONIA": 390}
    assert train.fingerprint != val.fingerprint


def test_cache_hit_does_not_decode_again(kaggle, chest_xray_dir, monkeypatch):
    splits, cache = kaggle

    def no_decode(*a, **k):
        raise AssertionError("decoded again despite a cached split")

    monkeypatch.setattr(folder, "decode_files", no_decode)
    again = load_split(str(chest_xray_dir), "train", 32, cache_dir=cache)
    np.testing.assert_array_equal(again.images, splits["train"].images)
    assert again.fingerprint == splits["train"].fingerprint


def test_patient_ids_from_kermany_names():
    from pathlib import Path

    assert folder.patient_id(Path("person1_bacteria_1.jpeg")) == "person1"
    assert folder.patient_id(Path("person1_virus_7.jpeg")) == "person1"
    assert folder.patient_id(Path("IM-0115-0001.jpeg")) == "im115"
    assert folder.patient_id(Path("IM-0115-0001-0002.jpeg")) == "im115"  # second image of the same patient
    # NORMAL2 batch merged with the first by IM number: coarser groups never leak a patient across splits
    assert folder.patient_id(Path("NORMAL2-IM-0115-0001.jpeg")) == "im115"
    assert folder.patient_id(Path("scan_017.png")) == "scan_017"  # unknown scheme: one image, one patient


# ---------------------------------------------------------------- image forms
def test_every_image_form_is_read_as_grayscale(tmp_path):
    ramp = np.linspace(1000, 3000, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "16bit.png")
    g16 = read_grayscale(tmp_path / "16bit.png")
    assert g16.dtype == np.uint8 and g16.min() == 0 and g16.max() == 255  # scaled by range, not clipped
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert abs(int(read_grayscale(tmp_path / "rgb.png")[0, 0]) - round(200 * 0.587)) <= 1
    Image.fromarray(np.dstack([rgb, np.full((8, 8), 10, np.uint8)])).save(tmp_path / "rgba.png")
    assert read_grayscale(tmp_path / "rgba.png").shape == (8, 8)
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
    assert read_grayscale(tmp_path / "pal.png").shape == (8, 8)
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(tmp_path / "gray.jpeg", quality=100)
    assert abs(int(read_grayscale(tmp_path / "gray.jpeg").mean()) - 77) <= 1


def test_dicom_monochrome1_is_inverted_and_rescaled(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(tmp_path / "x.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    pixels = np.tile(np.arange(16, dtype=np.uint16) * 100, (16, 1))
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.RescaleSlope, ds.RescaleIntercept = 2, -50
    ds.PixelData = pixels.tobytes()
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    g = read_grayscale(tmp_path / "x.dcm")
    assert g[0, 0] == 255 and g[0, -1] == 0  # MONOCHROME1: the highest value is darkest
    assert pydicom is not None


# ---------------------------------------------------------------- bad input
def _tree(root, n=3):
    for split in ("train", "test"):
        for cls in ("NORMAL", "PNEUMONIA"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((40, 40), 30 * i + 50 * (cls == "NORMAL"), np.uint8)).save(d / f"person{i}_{cls}_{i}.png")
    return root


def test_bad_folders_and_files_name_the_culprit(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_split(str(tmp_path / "missing"), "train", 32, cache_dir=tmp_path / "c")
    (tmp_path / "flat" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no class folders"):
        load_split(str(tmp_path / "flat"), "train", 32, cache_dir=tmp_path / "c")
    root = _tree(tmp_path / "tree")
    (root / "train" / "EMPTY").mkdir()
    with pytest.raises(DataError, match="EMPTY is empty"):
        load_split(str(root), "train", 32, cache_dir=tmp_path / "c")
    (root / "train" / "EMPTY").rmdir()
    bad = root / "train" / "NORMAL" / "notes.txt"
    bad.write_text("not an image")
    with pytest.raises(DataError, match="notes.txt"):
        load_split(str(root), "train", 32, cache_dir=tmp_path / "c")
    ds = load_split(str(root), "test", 32, cache_dir=tmp_path / "c")
    assert len(ds) == 6
    with pytest.raises(DataError, match="class_subset='EFFUSION'.*NORMAL, PNEUMONIA"):
        load_split(str(root), "test", 32, class_subset="EFFUSION", cache_dir=tmp_path / "c")


def test_truncated_files_can_be_skipped_and_counted(tmp_path):
    root = _tree(tmp_path / "tree", n=4)
    victim = root / "test" / "NORMAL" / "person0_NORMAL_0.png"
    victim.write_bytes(victim.read_bytes()[:60])
    with pytest.raises(DataError, match="person0_NORMAL_0.png"):
        load_split(str(root), "test", 32, cache_dir=tmp_path / "c")
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = load_split(str(root), "test", 32, cache_dir=tmp_path / "c", skip_unreadable=True)
    assert ds.skipped == 1 and len(ds) == 7


def test_bad_npz_names_the_key(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(p, train_images=np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(DataError, match="no key 'train_labels'"):
        load_split(str(p), "train", 32, cache_dir=tmp_path)
    np.savez(p, train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.zeros((3, 1), np.uint8))
    with pytest.raises(DataError, match="train_labels has shape"):
        load_split(str(p), "train", 32, cache_dir=tmp_path)
    np.savez(p, train_images=np.zeros((4, 8, 8), np.float32), train_labels=np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="dtype float32"):
        load_split(str(p), "train", 32, cache_dir=tmp_path)


def test_pneumoniamnist_offline_without_file_says_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.delenv("GAN_STUDY_PNEUMONIAMNIST", raising=False)
    import medmnist

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(medmnist, "PneumoniaMNIST", offline)
    with pytest.raises(DataError) as err:
        load_split("pneumoniamnist", "train", 28, cache_dir=tmp_path)
    msg = str(err.value)
    assert "GAN_STUDY_PNEUMONIAMNIST" in msg and "pneumoniamnist.npz" in msg and "\n" not in msg


def test_pneumoniamnist_from_env_file(pneumoniamnist_npz, tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_STUDY_PNEUMONIAMNIST", str(pneumoniamnist_npz))
    assert len(load_split("pneumoniamnist", "val", 28, cache_dir=tmp_path)) == 524


def test_hist_eq_and_limit(tmp_path):
    plain = load_split("phantom", "val", 32, cache_dir=tmp_path)
    eq = load_split("phantom", "val", 32, hist_eq=True, cache_dir=tmp_path)
    assert eq.images.std() > plain.images.std() and eq.fingerprint != plain.fingerprint
    small = load_split("phantom", "val", 32, limit=50, cache_dir=tmp_path)
    assert len(small) == 50 and set(small.labels) == {0, 1}
