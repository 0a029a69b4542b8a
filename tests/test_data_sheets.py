"""Label-sheet datasets (NIH ChestX-ray14, CheXpert, MIMIC-CXR-JPG, RSNA, any CSV): each found by its files,
split by patient as its official files say, turned into two classes by the task, and trained on end to end."""
from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest

import sheet_layouts as L
from study.cli import main
from trainers.config import ConfigError, TrialConfig
from trainers.data import SPLITS, folder, load_split, phantom, sheets
from trainers.errors import DataError


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    from conftest import SHARED_DATA

    base, px = tmp_path_factory.mktemp("sheets"), L.Pixels(SHARED_DATA)
    return {"nih": L.nih(base / "nih", px), "chexpert": L.chexpert(base / "chex", px),
            "mimic": L.mimic(base / "mimic", px), "rsna": L.rsna(base / "rsna", px),
            "csv": L.manifest(base / "csv", px)}


def _splits(src, tmp_path, **kw):
    return {s: load_split(str(src), s, 32, cache_dir=tmp_path / "c", **kw) for s in SPLITS}


def _disjoint(splits):
    ids = [set(splits[s].patient_ids) for s in SPLITS]
    return not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


FORMATS = ("nih", "chexpert", "mimic", "rsna", "csv")


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_layout_is_found_reported_and_trains(fmt, layouts, tmp_path, capsys):
    src = layouts[fmt]
    assert sheets.resolve(str(src))[0] == fmt and sheets.resolve(f"{fmt}:{src}")[0] == fmt
    assert main(["data", str(src)]) == 0
    table = capsys.readouterr().out
    assert f"({fmt})" in table and "NORMAL" in table and "PNEUMONIA" in table
    assert all(line.split()[0] in table for line in ("train", "val", "test", "total", "rows read"))
    splits = _splits(src, tmp_path)
    assert _disjoint(splits)  # no patient in two splits
    assert all(ds.class_names == ("NORMAL", "PNEUMONIA") and set(ds.labels) == {0, 1} for ds in splits.values())
    out = tmp_path / "trial"
    extra = ["--set", "eval_at_end=true", "--set", "eval_samples=8", "--set", "allow_low_n=true"] * (fmt == "nih")
    assert main(["trial", "--preset", "smoke", "--data", f"{fmt}:{src}", "--out", str(out), "--set", "iterations=4",
                 "--set", "report_every=2", *extra]) == 0
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert list(metrics["iteration"]) == [2, 4] and metrics["status"].iloc[-1] == "finished"
    if fmt == "nih":
        assert np.isfinite(metrics["fid"].iloc[-1])


def test_nih_official_lists_task_views_and_missing_files(layouts, tmp_path):
    root = layouts["nih"]
    splits = _splits(root, tmp_path)
    assert set(splits["test"].patient_ids) == {str(p) for p in range(17, 21)}  # test_list.txt, as given
    sheet = sheets.read_sheet("nih", root, sheets.Task())
    assert sheet.rows_read == 60 and sheet.left_out == {sheets.task.OTHER_FINDING: 10, sheets.task.MISSING_FILE: 1}
    assert sheet.images_listed == 60  # the last image is missing: named with its row
    assert sheet.missing == (f"{root}/images/00000020_002.png ({root}/Data_Entry_2017.csv row 61)",)
    assert sum(len(ds) for ds in splits.values()) == 49
    effusion = load_split(str(root), "train", 32, cache_dir=tmp_path / "c", data_task="effusion")
    assert effusion.class_names == ("NORMAL", "EFFUSION") and effusion.fingerprint != splits["train"].fingerprint
    pa = sheets.read_sheet("nih", root, sheets.Task(views="pa"))
    assert pa.left_out[sheets.task.VIEW] == 3  # patient 5 is AP
    with pytest.raises(DataError, match=r"data_task='Hernia' is not a finding of .*Data_Entry_2017.csv; "
                                        r"findings there: Effusion, Pneumonia"):
        load_split(str(root), "train", 32, cache_dir=tmp_path / "c", data_task="Hernia")


def test_nih_v2020_without_lists_is_carved_and_errors_name_file_and_row(tmp_path):
    root = L.nih(tmp_path / "nih", L.Pixels(), lists=False)
    text = (root / "Data_Entry_2017.csv").read_text().replace(",\n", "\n")  # the v2020 file has no trailing comma
    (root / "Data_Entry_2017.csv").unlink()
    (root / "Data_Entry_2017_v2020.csv").write_text(text)
    a, b = (_splits(root, tmp_path, seed=s) for s in (0, 1))
    assert _disjoint(a) and len(a["test"]) > 0
    np.testing.assert_array_equal(a["test"].images, b["test"].images)  # a carved test is the same for every seed
    assert a["val"].fingerprint != b["val"].fingerprint
    (root / "test_list.txt").write_text("00000017_000.png\n")
    with pytest.raises(DataError, match="train_val_list.txt is missing"):
        load_split(str(root), "train", 32, cache_dir=tmp_path / "c")
    (root / "test_list.txt").unlink()
    lines = text.splitlines()
    lines[4] = ",".join(f if i != 3 else "P2" for i, f in enumerate(lines[4].split(",")))  # Patient ID of row 5
    (root / "Data_Entry_2017_v2020.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"Data_Entry_2017_v2020.csv row 5: Patient ID='P2' is not a number"):
        load_split(str(root), "train", 32, cache_dir=tmp_path / "c")


def test_unreadable_image_names_the_sheet_row(tmp_path):
    root = L.nih(tmp_path / "nih", L.Pixels())
    (root / "images_001" / "images" / "00000001_000.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"00000001_000.png.*\(.*Data_Entry_2017.csv row 2\)"):
        load_split(str(root), "train", 32, cache_dir=tmp_path / "c")
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = load_split(str(root), "train", 32, cache_dir=tmp_path / "c", skip_unreadable=True)
    assert ds.skipped == 1


def test_chexpert_uncertain_views_paths_and_valid_as_test(layouts, tmp_path):
    root = layouts["chexpert"]
    counts = {u: sheets.read_sheet("chexpert", root, sheets.Task(uncertain=u)) for u in ("exclude", "positive",
                                                                                       "negative")}
    n_uncertain = counts["exclude"].left_out[sheets.task.UNCERTAIN]
    assert n_uncertain == 7 and counts["exclude"].left_out[sheets.task.VIEW] == 16  # every lateral
    pos = int((counts["positive"].labels == 1).sum()) - int((counts["exclude"].labels == 1).sum())
    neg = int((counts["negative"].labels == 0).sum()) - int((counts["exclude"].labels == 0).sum())
    assert pos == n_uncertain and neg == n_uncertain  # the -1.0 rows have no other finding: NORMAL under negative
    every_view = sheets.read_sheet("chexpert", root, sheets.Task(views="all"))
    assert sheets.task.VIEW not in every_view.left_out
    test = load_split(str(root), "test", 32, cache_dir=tmp_path / "c")
    assert set(test.patient_ids) == {f"patient{p:05d}" for p in range(64541, 64547)}  # valid.csv
    renamed = shutil.copytree(root, tmp_path / "my-chexpert")  # Path's first part is replaced by the root
    assert len(load_split(f"chexpert:{renamed}", "test", 32, cache_dir=tmp_path / "c")) == 6
    lines = (renamed / "train.csv").read_text().splitlines()
    lines[2] = lines[2].replace(",1.0,", ",2,", 1)
    (renamed / "train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train.csv row 3: \w[\w ]*='2' is not 1.0, 0.0, -1.0"):
        load_split(str(renamed), "train", 32, cache_dir=tmp_path / "c")


def test_mimic_official_split_labels_per_study_and_views(layouts, tmp_path):
    root = layouts["mimic"]
    sheet = sheets.read_sheet("mimic", root, sheets.Task())
    assert sheet.left_out[sheets.task.VIEW] == 18 and sheet.left_out[sheets.task.NO_LABEL] == 1
    a, b = (_splits(root, tmp_path, seed=s) for s in (0, 1))
    assert a["val"].fingerprint == b["val"].fingerprint  # validate is official: no carve, no seed
    subjects = {str(10000000 + n * 37) for n in range(13, 16)}
    assert set(a["val"].patient_ids) <= subjects
    lateral = sheets.read_sheet("mimic", root, sheets.Task(views="lateral"))
    assert lateral.left_out[sheets.task.VIEW] == 18 and len(lateral.paths) == len(sheet.paths)


def test_rsna_one_image_per_patient_detail_classes_and_errors(layouts, tmp_path):
    root = layouts["rsna"]
    sheet = sheets.read_sheet("rsna", root, sheets.Task())
    assert sheet.rows_read == 50 and sheet.images_listed == 40  # one row per box: 10 positives have two
    assert len(sheet.paths) == 30 and int(sheet.labels.sum()) == 10
    assert sheet.left_out == {sheets.task.OTHER_FINDING: 10}  # No Lung Opacity / Not Normal
    with pytest.raises(DataError, match="only Pneumonia"):
        load_split(str(root), "train", 32, cache_dir=tmp_path / "c", data_task="Effusion")
    with pytest.raises(DataError, match="no view column"):
        load_split(str(root), "train", 32, cache_dir=tmp_path / "c", data_views="pa")
    bad = shutil.copytree(root, tmp_path / "bad", ignore=shutil.ignore_patterns("*.dcm"))
    lines = (bad / "stage_2_train_labels.csv").read_text().splitlines()
    lines[3] = lines[3][:-1] + "0"  # the second box row of a positive patient says 0
    (bad / "stage_2_train_labels.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"stage_2_train_labels.csv row 4: Target=0 contradicts row 3"):
        load_split(str(bad), "train", 32, cache_dir=tmp_path / "c")


def test_csv_manifest_labels_splits_and_errors(layouts, tmp_path):
    src = layouts["csv"]
    assert sheets.read_sheet("csv", src, sheets.Task()).class_names == ("NORMAL", "PNEUMONIA")
    d = src.parent
    rows = pd.read_csv(src)
    rows.assign(label=(rows["label"] == "PNEUMONIA").astype(int),
                split=np.where(rows.index % 6 == 0, "test", np.where(rows.index % 6 == 1, "val", "train"))) \
        .drop(columns="patient").to_csv(d / "split.csv", index=False)
    s = _splits(d / "split.csv", tmp_path)
    assert len(s["test"]) == 6 and len(s["val"]) == 6 and len(s["train"]) == 24
    assert s["train"].class_names == ("NORMAL", "PNEUMONIA") and s["train"].patient_ids[0] == "img_002"
    rows.assign(label=np.where(rows["label"] == "NORMAL", "No Finding", "Effusion|Mass")) \
        .to_csv(d / "findings.csv", index=False)
    ds = load_split(str(d / "findings.csv"), "train", 32, cache_dir=tmp_path / "c", data_task="Mass")
    assert ds.class_names == ("NORMAL", "MASS")
    with pytest.raises(DataError, match="needs findings labels"):
        load_split(str(src), "train", 32, cache_dir=tmp_path / "c", data_task="Mass")
    (d / "bad.csv").write_text("path,label,split\nscans/img_000.png,NORMAL,train\nscans/img_001.png,NORMAL,holdout\n")
    with pytest.raises(DataError, match=r"bad.csv row 3: split='holdout'"):
        load_split(str(d / "bad.csv"), "train", 32, cache_dir=tmp_path / "c")
    (d / "nolabel.csv").write_text("file,class\nscans/img_000.png,NORMAL\n")
    with pytest.raises(DataError, match=r"nolabel.csv row 1: no column 'path'"):
        load_split(str(d / "nolabel.csv"), "train", 32, cache_dir=tmp_path / "c")


def test_existing_sources_keep_their_cache_keys_and_refuse_a_task(tmp_path):
    def key(*parts):  # trainers.data's cache-key formula, version 2, as committed before label sheets
        return hashlib.sha1("|".join(map(str, (2, *parts))).encode()).hexdigest()[:16]

    ds = load_split("phantom", "val", 32, cache_dir=tmp_path / "c")
    assert ds.fingerprint == key(f"phantom-v{phantom.VERSION}-seed0", "val", 32, False, False)
    root = tmp_path / "tree"
    for split in ("train", "test"):
        for cls in ("NORMAL", "PNEUMONIA"):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                L._save(root / split / cls / f"person{i}_{cls}_{i}.png", L.Pixels()(int(cls != "NORMAL"), i))
    _, fp = folder.scan(root)
    assert load_split(str(root), "test", 32, cache_dir=tmp_path / "c").fingerprint == key(f"folder-{fp}", "test", 32,
                                                                                          False, False)
    with pytest.raises(DataError, match="apply to label sheets"):
        load_split(str(root), "test", 32, cache_dir=tmp_path / "c", data_task="Effusion")


def test_data_keys_are_validated_like_every_other_key(capsys, tmp_path):
    cfg = TrialConfig()
    assert (cfg.data_task, cfg.data_uncertain, cfg.data_views) == ("Pneumonia", "exclude", "frontal")
    with pytest.raises(ConfigError, match="data_views='side' is not allowed; allowed values: frontal, pa, ap"):
        TrialConfig.from_dict({"data_views": "side"})
    with pytest.raises(ConfigError, match="data_uncertain='maybe' is not allowed"):
        TrialConfig.from_dict({"data_uncertain": "maybe"})
    with pytest.raises(ConfigError, match="'No Finding' is the NORMAL class"):
        TrialConfig.from_dict({"data_task": "No Finding"})
    assert main(["data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nowhere" in err and "\n" not in err
    (tmp_path / "empty").mkdir()
    assert main(["data", f"nih:{tmp_path / 'empty'}"]) == 2
    assert "Data_Entry_2017.csv" in capsys.readouterr().err


def test_a_study_keeps_the_forced_format_and_makes_its_path_absolute(layouts, tmp_path, monkeypatch):
    from study.spec import new_spec

    monkeypatch.chdir(layouts["rsna"].parent)
    spec = new_spec(out=str(tmp_path / "s"), space="smoke", data="rsna:rsna")
    assert spec.overrides["data"] == f"rsna:{layouts['rsna'].resolve()}"


def test_a_checkpoint_from_before_the_data_keys_resumes_only_with_their_defaults():
    from trainers.checkpoint import config_changes

    old = {k: v for k, v in TrialConfig().to_dict().items() if not k.startswith("data_")} | {"data_limit": 0}
    assert config_changes(old, TrialConfig().to_dict()) == {}
    assert config_changes(old, TrialConfig(data_task="Effusion").to_dict()) == {"data_task": ("Pneumonia", "Effusion")}
