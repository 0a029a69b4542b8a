"""What a user meets with a damaged or partial copy of a public dataset: every layout is recognised by its files,
then one line names the file (and the row) and says what to do; header-only sheets, missing and unreadable
images, decoder warnings and leaking patients are named, not hidden in a count or a library's warning.
Also pins the label, split and cache rules whose breakage would go unnoticed (issue #24, section 3)."""
from __future__ import annotations

import gzip
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import sheet_layouts as L
from study.cli import main
from trainers.data import DataWarning, cache, folder, load_split, sheets
from trainers.data.sheets.task import OTHER_FINDING, Task, coded_label
from trainers.errors import DataError

PX = L.Pixels()  # phantoms: no shared data needed, and fast


def _load(src, tmp_path, split="train", **kw):
    return load_split(str(src), split, 16, cache_dir=tmp_path / "c", **kw)


def _data(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["data", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err.strip()


def _rewrite(path: Path, edit) -> None:
    """Apply `edit(list of lines) -> list of lines` to a sheet, gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        lines = f.read().splitlines()
    with opener(path, "wt") as f:
        f.write("\n".join(edit(lines)) + "\n")


def _build(layout: str, tmp_path: Path) -> Path:
    """The miniature layout's root folder (the manifest's folder for csv)."""
    if layout == "chexpert":
        return L.chexpert(tmp_path, PX)
    if layout == "csv":
        return L.manifest(tmp_path / "csv", PX, n=12).parent
    if layout == "rsna":
        return L.rsna(tmp_path / layout, PX, n=8)
    return {"nih": L.nih, "mimic": L.mimic}[layout](tmp_path / layout, PX)


def _drop_column(name: str):
    def edit(lines):
        i = lines[0].split(",").index(name)
        return [",".join(f for j, f in enumerate(line.split(",")) if j != i) for line in lines]
    return edit


# ------------------------------------------------------------------ detection by files, then what is wrong
def test_chexpert_without_a_column_is_still_chexpert_and_the_message_names_the_column(tmp_path, capsys):
    root = L.chexpert(tmp_path, PX)
    _rewrite(root / "train.csv", _drop_column("Frontal/Lateral"))
    assert sheets.resolve(str(root))[0] == "chexpert"
    rc, out, err = _data(capsys, root)
    assert rc == 2 and "\n" not in err
    assert f"{root / 'train.csv'} row 1: no column 'Frontal/Lateral'" in err and "class folder" not in err
    with pytest.raises(DataError, match=r"train.csv row 1: no column 'Frontal/Lateral'"):
        _load(root, tmp_path)


@pytest.mark.parametrize("layout, remove, expected", [
    ("chexpert", ["valid.csv"], r"valid.csv is missing: a CheXpert folder holds"),
    ("chexpert", ["train.csv", "valid.csv"], r"train.csv is missing: a CheXpert folder holds"),
    ("nih", ["Data_Entry_2017.csv"], r"is not an NIH ChestX-ray14 folder: it has no Data_Entry_2017.csv or "
                                     r"Data_Entry_2017_v2020.csv"),
    ("mimic", ["mimic-cxr-2.0.0-split.csv.gz"], r"mimic-cxr-2.0.0-split.csv.gz is missing: a MIMIC-CXR-JPG folder"),
    ("rsna", ["stage_2_train_labels.csv"], r"stage_2_train_labels.csv is missing: an RSNA Pneumonia folder"),
])
def test_a_partial_copy_is_recognised_by_its_other_files(layout, remove, expected, tmp_path):
    root = _build(layout, tmp_path)
    for name in remove:
        (root / name).unlink()
    assert sheets.resolve(str(root))[0] == layout
    with pytest.raises(DataError, match=expected) as err:
        _load(root, tmp_path)
    assert str(root) in str(err.value) and "\n" not in str(err.value)


def test_folder_sources_say_what_they_are_and_how_to_fix(tmp_path, capsys):
    tree = tmp_path / "tree"
    for split in ("train", "test"):
        for cls in ("NORMAL", "PNEUMONIA"):
            for i in range(3):
                L._save(tree / split / cls / f"person{i}_{cls}_{i}.png", PX(int(cls != "NORMAL"), i))
    (tree / "train" / "EFFUSION" / "patient1").mkdir(parents=True)  # a class folder of folders
    with pytest.raises(DataError, match=r"EFFUSION holds no image files, only sub-folders \(patient1, ...\); a class "
                                        r"folder holds its images directly"):
        _load(tree, tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("not data")
    rc, _, err = _data(capsys, notes)
    assert rc == 2 and f"data source {notes} is a file but neither a .csv manifest nor an .npz" in err
    parent = tmp_path / "downloads"
    L.rsna(parent / "rsna", PX, n=4)
    rc, _, err = _data(capsys, parent)
    assert rc == 2 and f"it holds {parent / 'rsna'} (RSNA Pneumonia Detection): point --data there" in err


# ------------------------------------------------------------------ header-only sheets
def _header_only(path: Path) -> None:
    _rewrite(path, lambda lines: lines[:1])


@pytest.mark.parametrize("layout, sheet", [
    ("nih", "Data_Entry_2017.csv"), ("chexpert", "train.csv"), ("chexpert", "valid.csv"),
    ("mimic", "mimic-cxr-2.0.0-split.csv.gz"), ("mimic", "mimic-cxr-2.0.0-chexpert.csv.gz"),
    ("rsna", "stage_2_train_labels.csv"), ("csv", "manifest.csv"), ("csv", "split.csv"),
])
def test_a_header_only_sheet_says_it_has_no_rows(layout, sheet, tmp_path):
    root = _build(layout, tmp_path)
    if sheet == "split.csv":
        (root / sheet).write_text("path,label,split\n")
    _header_only(root / sheet)
    src = root / sheet if layout == "csv" else root
    with pytest.raises(DataError, match=rf"label sheet {re.escape(str(root / sheet))} has no rows, only its header"):
        _load(src, tmp_path)


def test_a_sheet_of_only_no_finding_rows_says_so(tmp_path):
    root = L.nih(tmp_path / "nih", PX)
    _rewrite(root / "Data_Entry_2017.csv", lambda lines: [lines[0]] + [ln for ln in lines[1:] if ",No Finding," in ln])
    with pytest.raises(DataError, match=r"data_task='Pneumonia' is not a finding of .*Data_Entry_2017.csv: it has no "
                                        r"finding but No Finding"):
        _load(root, tmp_path)


def test_chexpert_header_only_train_csv_fails_the_data_command(tmp_path, capsys):
    root = L.chexpert(tmp_path, PX)
    _header_only(root / "train.csv")
    rc, out, err = _data(capsys, root)
    assert rc == 2 and out == "" and f"{root / 'train.csv'} has no rows" in err


def test_an_empty_split_names_the_sheets_and_why(tmp_path):
    root = L.chexpert(tmp_path, PX)
    with pytest.raises(DataError, match=r"test split is empty: train.csv, valid.csv in .* list 54 images, 10 kept "
                                        r"for the task, none in test .*; left out: 38 view not in data_views"):
        _load(root, tmp_path, "test", data_views="lateral")  # valid.csv is all frontal


# ------------------------------------------------------------------ missing and unreadable images
def test_missing_images_are_named_with_their_rows(tmp_path, capsys):
    root = L.nih(tmp_path / "nih", PX)  # the last image (row 61) is missing
    for name in ("00000001_000.png", "00000001_002.png", "00000002_000.png", "00000002_002.png"):
        (root / "images_001" / "images" / name).unlink()
    rc, out, _ = _data(capsys, root)
    assert rc == 0
    (line,) = [ln for ln in out.splitlines() if ln.startswith("missing")]
    assert (f"missing    5 image(s) listed in Data_Entry_2017.csv not on disk (left out): "
            f"{root}/images/00000001_000.png ({root}/Data_Entry_2017.csv row 2); ") in line
    assert line.endswith(f"{root}/images/00000002_000.png ({root}/Data_Entry_2017.csv row 5) and 2 more")
    with pytest.warns(DataWarning) as told:
        for split in ("train", "val", "test"):
            _load(root, tmp_path, split)
    assert len(told) == 1 and "5 image(s) listed" in str(told[0].message)  # once per sheet, not per split
    assert "Data_Entry_2017.csv row 2" in str(told[0].message)


def test_a_sheet_whose_images_are_all_missing_names_them(tmp_path):
    root = L.manifest(tmp_path / "csv", PX, n=6)
    shutil.rmtree(root.parent / "scans")
    first = re.escape(f"{root.parent}/scans/img_000.png ({root} row 2)")
    with pytest.raises(DataError, match=rf"manifest.csv: no image is left .* missing file; 6 image\(s\) listed in "
                                        rf"manifest.csv not on disk \(left out\): {first}; "):
        _load(root, tmp_path)


def _corrupt_rsna(tmp_path) -> tuple[Path, str, str, str]:
    """An RSNA folder with one truncated DICOM (unreadable) and two with the same excess pixel padding (pydicom
    warns twice with one text: both must be named)."""
    import pydicom

    root = L.rsna(tmp_path / "rsna", PX, n=12)
    dcms = sorted((root / "stage_2_train_images").iterdir())
    bad, padded, padded2 = dcms[0], dcms[2], dcms[4]  # all three NORMAL: kept by the task
    bad.write_bytes(bad.read_bytes()[:-200])
    for p in (padded, padded2):
        ds = pydicom.dcmread(p)
        ds.PixelData = ds.PixelData + b"\0" * 400
        ds.save_as(p)
    return root, str(bad), str(padded), str(padded2)


def test_decode_names_unreadable_and_warned_files_in_one_line_each(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GAN_STUDY_CACHE", str(tmp_path / "c"))
    root, bad, padded, padded2 = _corrupt_rsna(tmp_path)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")  # as a command line runs: a repeated warning text is shown once
        rc, out, err = _data(capsys, root, "--decode", "--set", "resolution=32")
    assert rc == 0 and err == ""
    assert not [w for w in shown if "padding" in str(w.message) or str(root) in str(w.message)]  # told in the table
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.split()[:1] in (["unreadable"], ["warnings"])}
    assert lines["unreadable"].startswith(f"unreadable 1 image(s) skipped: {bad} ({root}/stage_2_train_labels.csv "
                                          "row 2): ValueError: The number of bytes of pixel data is less")
    assert lines["warnings"].startswith("warnings   2 image(s) decoded with a warning (check them): ")
    assert f"{padded} ({root}/stage_2_train_labels.csv row 5): UserWarning: The pixel data is 2000 bytes long, " \
           "which indicates it contains 400 bytes of excess padding" in lines["warnings"]
    assert padded2 in lines["warnings"]
    rc, again, _ = _data(capsys, root, "--decode", "--set", "resolution=32")  # from the cache: named all the same
    assert again == out
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        folder.decode_files([Path(padded), Path(padded2)], 16, False, True, notes=notes)
    assert [n.split("\t")[:2] for n in notes] == [["warning", padded], ["warning", padded2]] and not shown


def test_a_trial_load_warns_naming_the_files_as_one_line(tmp_path):
    from trainers.data.sheets.split import split_index

    root, bad, padded, _ = _corrupt_rsna(tmp_path)
    sheet = sheets.read_sheet("rsna", root, Task())
    split_of = {sheet.paths[i]: s for s in ("train", "val", "test") for i in split_index(sheet, s, 0)}
    with pytest.warns(DataWarning) as told:
        ds = _load(root, tmp_path, split_of[bad], skip_unreadable=True)
    message = next(str(w.message) for w in told if "unreadable" in str(w.message))
    assert ds.skipped == 1 and f"skipped 1 unreadable image(s) in {split_of[bad]}: {bad} (" in message
    assert warnings.formatwarning(message, DataWarning, "x.py", 7, "warn(...)") == f"warning: {message}\n"
    with pytest.warns(DataWarning) as told:
        _load(root, tmp_path, split_of[padded], skip_unreadable=True)
    assert any(f"decoded with a warning (check them): {padded} (" in str(w.message) for w in told)
    with pytest.raises(DataError, match=r"cannot read DICOM .*\(.*stage_2_train_labels.csv row 2\)"):
        _load(root, tmp_path, split_of[bad])  # without skip_unreadable: the error names the file and its row


# ------------------------------------------------------------------ patients in two official splits
def _move(root: Path, name: str, to: str) -> None:
    lists = {"train": root / "train_val_list.txt", "test": root / "test_list.txt"}
    for split, path in lists.items():
        names = [n for n in path.read_text().split() if n != name] + [name] * (split == to)
        path.write_text("\n".join(names) + "\n")


def test_a_patient_leak_through_a_row_the_task_leaves_out_is_an_error(tmp_path):
    root = L.nih(tmp_path / "nih", PX)
    _move(root, "00000018_001.png", "train")  # patient 18 (test) row 54: Effusion, left out of the Pneumonia task
    with pytest.raises(DataError, match=r"patient 18 is in train \(.*Data_Entry_2017.csv row 54\) and in test "
                                        r"\(.*Data_Entry_2017.csv row 53\)"):
        _load(root, tmp_path)
    mimic = L.mimic(tmp_path / "mimic", PX)
    # subject 1's LATERAL image (left out: views=frontal) moved to test, its PA image stays in train
    _rewrite(mimic / "mimic-cxr-2.0.0-split.csv.gz",
             lambda lines: lines[:2] + [lines[2].replace(",train", ",test")] + lines[3:])
    with pytest.raises(DataError, match=r"patient 10000037 is in train \(.*split.csv.gz row 2\) and in test "
                                        r"\(.*split.csv.gz row 3\)"):
        _load(mimic, tmp_path)


def test_train_val_list_rows_count_as_train_against_the_test_list(tmp_path):
    root = L.nih(tmp_path / "nih", PX)
    _move(root, "00000016_000.png", "test")  # patient 16's other images stay in train_val_list.txt
    with pytest.raises(DataError, match=r"patient 16 is in train \(.*Data_Entry_2017.csv row 48\) and in test "
                                        r"\(.*Data_Entry_2017.csv row 47\): a patient's images must all be in one"):
        _load(root, tmp_path)
    (root / "test_list.txt").write_text((root / "test_list.txt").read_text() + "00000001_000.png\n")
    with pytest.raises(DataError, match="00000001_000.png is in both train_val_list.txt and test_list.txt"):
        _load(root, tmp_path)


# ------------------------------------------------------------------ labels, counts, cache keys
def test_uncertain_as_negative_never_makes_an_image_with_another_finding_normal(tmp_path):
    assert coded_label(None, -1.0, True, "negative") == OTHER_FINDING
    assert coded_label(None, -1.0, False, "negative") == 0
    assert coded_label(1.0, -1.0, False, "positive") == 1
    root = L.chexpert(tmp_path, PX)
    rel = "CheXpert-v1.0-small/train/patient00099/study1/view1_frontal.jpg"
    L._save(tmp_path / rel, PX(1, 0))
    _rewrite(root / "train.csv", lambda lines: lines + [L._chexpert_row(rel, "PA", {"Pneumonia": "-1.0",
                                                                                    "Edema": "1.0"})])
    plain = sheets.read_sheet("chexpert", root, Task(uncertain="exclude"))
    negative = sheets.read_sheet("chexpert", root, Task(uncertain="negative"))
    assert not any("patient00099" in p for p in negative.paths)
    assert negative.left_out[OTHER_FINDING] == plain.left_out[OTHER_FINDING] + 1
    mimic = L.mimic(tmp_path / "mimic", PX)
    edema = L.MIMIC_OBS.index("Edema") + 2
    # study of subject 3 is Pneumonia -1.0 only; give it Edema 1.0 too
    _rewrite(mimic / "mimic-cxr-2.0.0-chexpert.csv.gz", lambda lines: [
        ",".join("1.0" if (j == edema and line.startswith("10000111,")) else f for j, f in enumerate(line.split(",")))
        for line in lines])
    negative = sheets.read_sheet("mimic", mimic, Task(uncertain="negative"))
    assert not any("/p10000111/" in p for p in negative.paths)


@pytest.mark.filterwarnings("ignore::trainers.data.notes.DataWarning")  # the miniature NIH's one missing image
def test_the_uncertain_policy_is_part_of_the_cache_key(tmp_path):
    root = L.chexpert(tmp_path, PX)
    loaded = {u: _load(root, tmp_path, data_uncertain=u) for u in ("exclude", "positive", "negative")}
    assert len({ds.fingerprint for ds in loaded.values()}) == 3
    normal = {u: int((ds.labels == 0).sum()) for u, ds in loaded.items()}
    assert normal["negative"] > normal["exclude"]  # the memoised sheet of one policy is not the other's
    nih = L.nih(tmp_path / "nih", PX)  # no uncertain codes at all: the split is the same, still never shared
    keys = {_load(nih, tmp_path, data_uncertain=u).fingerprint for u in ("exclude", "positive")}
    assert len(keys) == 2


def test_a_rebuilt_cache_entry_is_read_again_by_a_process_that_had_opened_it(tmp_path):
    entry = tmp_path / "data" / "k"
    entry.parent.mkdir(parents=True)

    def arrays(value):
        return {"images": np.full((3, 4, 4), value, np.uint8), "labels": np.zeros(3, np.int64)}

    old = cache.cached_arrays(entry, lambda work: arrays(1))
    st = (entry / "images.npy").stat()
    shutil.rmtree(entry)  # another process rebuilds it (a changed source, a corrupt file)
    cache._publish(entry, arrays(2), tmp_path / "work")
    os.utime(entry / "images.npy", ns=(st.st_atime_ns, st.st_mtime_ns))  # even within one timestamp tick

    def no_build(work):
        raise AssertionError("the entry exists: it must be read, not built")

    new = cache.cached_arrays(entry, no_build)
    assert int(old["images"][0, 0, 0]) == 1 and int(new["images"][0, 0, 0]) == 2


def test_counts_say_what_they_count(tmp_path, capsys):
    root = L.rsna(tmp_path / "rsna", PX, n=8)  # 8 images, 2 of them with two box rows: 10 rows
    sheet = sheets.read_sheet("rsna", root, Task())
    assert (sheet.rows_read, sheet.images_listed) == (10, 8)
    rc, out, _ = _data(capsys, root)
    assert "rows     10 rows of stage_2_train_labels.csv, one per opacity box (one with blank box for none): " \
           "8 images (patientIds)" in out
    assert [ln.split()[-1] for ln in out.splitlines() if ln.startswith("images listed")] == ["8"]
    manifest = L.manifest(tmp_path / "csv", PX, n=12)
    named = sheets.read_sheet("csv", manifest, Task())
    assert named.task_note == "classes named by the label column: NORMAL, PNEUMONIA (sorted, as class folders)"
    _rewrite(manifest, lambda lines: [lines[0]] + [ln.replace(",NORMAL,", ",0,").replace(",PNEUMONIA,", ",1,")
                                                   for ln in lines[1:]])
    numbered = sheets.read_sheet("csv", manifest, Task())
    assert numbered.task_note.startswith("label 0 = NORMAL, label 1 = PNEUMONIA")
