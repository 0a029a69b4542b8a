"""The decode-once cache shared by every trial on a node: read-only memmap, atomic entries, resumable
sharded decode, one builder per entry across processes."""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainers.data import cache, folder, load_split
from trainers.errors import DataError

N_PER_CLASS = 10  # test/ holds 20 files: 5 shards of 4 when SHARD_SIZE is 4
NORMAL_VALUES = {120 + 12 * i for i in range(N_PER_CLASS)}  # each file is one flat grey level, by class


def _tree(root: Path) -> Path:
    """A Kaggle-layout tree whose test/ split is not carved (so its file list is fixed)."""
    for split in ("train", "test"):
        for cls in ("NORMAL", "PNEUMONIA"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(N_PER_CLASS):
                value = 12 * i + 120 * (cls == "NORMAL")
                Image.fromarray(np.full((24, 24), value, np.uint8)).save(d / f"person{i}_{cls}_{i}.png")
    return root


def _entry(cache_dir: Path) -> list[Path]:
    return sorted(p for p in (cache_dir / "data").iterdir() if not p.name.startswith("."))


def test_cached_images_are_a_shared_read_only_memmap(tmp_path):
    a = load_split("phantom", "val", 16, cache_dir=tmp_path)
    b = load_split("phantom", "val", 16, cache_dir=tmp_path)
    assert isinstance(a.images, np.memmap) and not a.images.flags.writeable
    with pytest.raises(ValueError):
        a.images[0, 0, 0] = 1
    assert np.shares_memory(a.images, b.images)  # two loads in one process: one map
    entry = _entry(tmp_path)
    assert [p.name for p in entry] == [a.fingerprint] and Path(a.images.filename) == entry[0] / "images.npy"
    cache._opened.clear()  # as another process would: a new map of the same file
    c = load_split("phantom", "val", 16, cache_dir=tmp_path)
    assert c.images.filename == a.images.filename and not np.shares_memory(a.images, c.images)
    np.testing.assert_array_equal(a.images, c.images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on non-writable arrays: to_tensor must copy first
        t = a.to_tensor()
    assert t.shape == (400, 1, 16, 16) and -1 <= float(t.min()) and float(t.max()) <= 1
    sub = a.subset_class("NORMAL")  # fancy indexing copies: a private, writable array
    assert sub.images.flags.writeable and set(sub.labels) == {0}


def test_interrupted_decode_resumes_from_finished_shards(tmp_path, monkeypatch, capsys):
    root = _tree(tmp_path / "tree")
    monkeypatch.setattr(folder, "SHARD_SIZE", 4)
    monkeypatch.setattr(folder, "_pool", lambda: folder.ThreadPoolExecutor(max_workers=1))  # deterministic
    original = folder._decode_one
    calls: list[Path] = []

    def interrupted(path, *args):
        if len(calls) == 9:  # the first file of shard 2 (after 2 finished shards of 4)
            raise KeyboardInterrupt
        calls.append(path)
        return original(path, *args)

    monkeypatch.setattr(folder, "_decode_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_split(str(root), "test", 16, cache_dir=tmp_path / "c")
    # Nothing half-built is ever an entry: only the resumable work dir with its 2 finished shards.
    (partial,) = _entry(tmp_path / "c")
    assert partial.name.endswith(".partial")
    assert len(list(partial.glob("shard-*.images.npy"))) == 2
    with pytest.raises(KeyboardInterrupt):  # still no entry: the next load decodes again, not reads
        load_split(str(root), "test", 16, cache_dir=tmp_path / "c")

    calls.clear()
    monkeypatch.setattr(folder, "_decode_one", lambda path, *a: calls.append(path) or original(path, *a))
    monkeypatch.setattr(folder, "PROGRESS_MIN", 5)
    ds = load_split(str(root), "test", 16, cache_dir=tmp_path / "c")
    assert len(calls) == 12  # shards 2..4 only
    assert "resuming at 8" in capsys.readouterr().err
    (entry,) = _entry(tmp_path / "c")
    assert not entry.name.endswith(".partial") and isinstance(ds.images, np.memmap)
    fresh = load_split(str(root), "test", 16, cache_dir=tmp_path / "fresh")
    np.testing.assert_array_equal(ds.images, fresh.images)
    np.testing.assert_array_equal(ds.labels, fresh.labels)
    np.testing.assert_array_equal(ds.patient_ids, fresh.patient_ids)


def test_failed_publish_leaves_no_entry_and_corrupt_entries_are_rebuilt(tmp_path, monkeypatch):
    real_fsync, n = cache._fsync, []

    def disk_full(path):
        n.append(path)
        if len(n) == 2:
            raise OSError("No space left on device")
        real_fsync(path)

    monkeypatch.setattr(cache, "_fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        load_split("phantom", "val", 16, cache_dir=tmp_path)
    assert _entry(tmp_path) == [] and not list((tmp_path / "data").glob("*.tmp"))
    monkeypatch.setattr(cache, "_fsync", real_fsync)
    good = np.array(load_split("phantom", "val", 16, cache_dir=tmp_path).images)
    (entry,) = _entry(tmp_path)
    (entry / "images.npy").write_bytes((entry / "images.npy").read_bytes()[:500])  # truncated
    cache._opened.clear()
    np.testing.assert_array_equal(load_split("phantom", "val", 16, cache_dir=tmp_path).images, good)


def test_bad_files_across_shards_name_the_file_or_are_skipped(tmp_path, monkeypatch):
    root = _tree(tmp_path / "tree")
    monkeypatch.setattr(folder, "SHARD_SIZE", 3)
    victim = root / "test" / "NORMAL" / "person4_NORMAL_4.png"
    victim.write_bytes(victim.read_bytes()[:30])  # cut inside the header
    with pytest.raises(DataError, match="person4_NORMAL_4.png"):
        load_split(str(root), "test", 16, cache_dir=tmp_path / "c")
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = load_split(str(root), "test", 16, cache_dir=tmp_path / "c", skip_unreadable=True)
    assert ds.skipped == 1 and len(ds) == 2 * N_PER_CLASS - 1 and "person4" not in set(ds.patient_ids[ds.labels == 0])
    values = ds.images.reshape(len(ds), -1).mean(axis=1).round().astype(int)
    assert all((v in NORMAL_VALUES) == (label == 0) for v, label in zip(values, ds.labels))  # rows stay aligned


def _load_in_child(root: str, cache_dir: str, log: str, out: str, barrier) -> None:
    """One 'trial' on the node: log every decoded file, then load the split."""
    original = folder._decode_one
    lock = threading.Lock()

    def logged(path, *args):
        with lock, open(log, "a") as f:
            f.write(f"{os.getpid()} {path}\n")
        time.sleep(0.02)  # a slow decode, so the second process arrives while the first is building
        return original(path, *args)

    folder._decode_one = logged
    barrier.wait()
    ds = load_split(root, "test", 16, cache_dir=cache_dir)
    np.save(out, np.asarray(ds.images))


def test_concurrent_builders_decode_once(tmp_path):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs fork (Linux)")
    ctx = multiprocessing.get_context("fork")  # fast: the children need not import torch again
    root = _tree(tmp_path / "tree")
    log = tmp_path / "decoded.log"
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_load_in_child, args=(str(root), str(tmp_path / "c"), str(log),
                                                         str(tmp_path / f"out{i}.npy"), barrier)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    lines = log.read_text().splitlines()
    assert len(lines) == 2 * N_PER_CLASS and len({line.split()[0] for line in lines}) == 1  # one builder
    np.testing.assert_array_equal(np.load(tmp_path / "out0.npy"), np.load(tmp_path / "out1.npy"))
