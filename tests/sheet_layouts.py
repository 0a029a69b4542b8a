"""Miniature copies of the label-sheet datasets, written by the tests: the exact file names, headers and paths
of NIH ChestX-ray14, CheXpert, MIMIC-CXR-JPG, RSNA Pneumonia and a CSV manifest, a few dozen small images each.

Pixels are real Kermany radiographs from ../shared/data/chest_xray when present (resized small), else phantoms;
a NORMAL row gets a NORMAL image, a finding row a PNEUMONIA image.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 40
NIH_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
CHEXPERT_OBS = ("No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,"
                "Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices").split(",")
CHEXPERT_HEADER = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_OBS)
MIMIC_OBS = ("Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,Lung Lesion,"
             "Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices").split(",")
MIMIC_META = ("dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,"
              "StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
              "PatientOrientationCodeSequence_CodeMeaning")


class Pixels:
    """A small grayscale image per (class, index): real X-rays when the shared data is there."""

    def __init__(self, shared: Path | None = None):
        self.real: dict[int, list[Path]] = {}
        root = (shared or Path()) / "chest_xray" / "train"
        if shared is not None and root.is_dir():
            for label, cls in enumerate(("NORMAL", "PNEUMONIA")):
                self.real[label] = sorted((root / cls).iterdir())[:30]

    def __call__(self, label: int, i: int) -> np.ndarray:
        if self.real:
            with Image.open(self.real[label][i % len(self.real[label])]) as im:
                return np.asarray(im.convert("L").resize((SIZE, SIZE), Image.BICUBIC))
        from trainers.data import phantom

        return phantom.render(np.array([label]), SIZE, np.random.default_rng([label, i]))[0]


def _save(path: Path, pixels: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(pixels)
    im = im.convert(mode) if mode != "L" else im
    im.save(path)


NIH_CYCLE = ("No Finding", "Pneumonia", "No Finding", "Pneumonia|Effusion", "Effusion", "No Finding")


def nih(root: Path, pixels: Pixels, patients: int = 20, per_patient: int = 3, lists: bool = True) -> Path:
    """Data_Entry_2017.csv (trailing commas), images_001/images and images_002/images (some RGBA), split lists;
    the last row's PNG is missing. Patients 1..16 train_val, 17..20 test; patient 5 is AP, the rest PA."""
    rows, train_val, test = [NIH_HEADER], [], []
    i = 0
    for pid in range(1, patients + 1):
        for k in range(per_patient):
            name, labels = f"{pid:08d}_{k:03d}.png", NIH_CYCLE[i % len(NIH_CYCLE)]
            view = "AP" if pid == 5 else "PA"
            rows.append(f"{name},{labels},{k},{pid},{40 + pid},{'MF'[pid % 2]},{view},2500,2048,0.143,0.143,")
            (test if pid > 16 else train_val).append(name)
            folder = root / ("images_001" if pid <= 10 else "images_002") / "images"
            if not (pid == patients and k == per_patient - 1):  # the last file is missing
                _save(folder / name, pixels(int(labels != "No Finding"), i), "RGBA" if i % 7 == 0 else "L")
            i += 1
    root.mkdir(parents=True, exist_ok=True)
    (root / "Data_Entry_2017.csv").write_text("\n".join(rows) + "\n")
    if lists:
        (root / "train_val_list.txt").write_text("\n".join(train_val) + "\n")
        (root / "test_list.txt").write_text("\n".join(test) + "\n")
    return root


def _chexpert_row(rel: str, view: str, codes: dict[str, str]) -> str:
    frontal, appa = ("Lateral", "") if view == "LATERAL" else ("Frontal", view)
    return f"{rel},Female,61,{frontal},{appa}," + ",".join(codes.get(o, "") for o in CHEXPERT_OBS)


def chexpert(parent: Path, pixels: Pixels) -> Path:
    """CheXpert-v1.0-small/{train,valid}.csv and JPGs; train: 16 patients x 2 studies (frontal + a lateral in
    study 1), labels cycling NORMAL / Pneumonia 1.0 / Pneumonia -1.0 / Edema; valid: 6 patients, 0/1 only."""
    root = parent / "CheXpert-v1.0-small"
    train, valid = [CHEXPERT_HEADER], [CHEXPERT_HEADER]
    cycle = ({"No Finding": "1.0"}, {"Pneumonia": "1.0", "Lung Opacity": "1.0"}, {"Pneumonia": "-1.0"},
             {"Edema": "1.0", "Pneumonia": "0.0"}, {"No Finding": "1.0", "Support Devices": "1.0"})
    i = 0
    for p in range(1, 17):
        for s in (1, 2):
            views = [("view1_frontal", "PA" if p % 2 else "AP")] + ([("view2_lateral", "LATERAL")] if s == 1 else [])
            for view_name, view in views:
                codes = cycle[i % len(cycle)]
                rel = f"CheXpert-v1.0-small/train/patient{p:05d}/study{s}/{view_name}.jpg"
                train.append(_chexpert_row(rel, view, codes))
                _save(parent / rel, pixels(int("No Finding" not in codes), i))
                i += 1
    for p in range(64541, 64547):
        codes = {"No Finding": "1.0"} if p % 2 else {"Pneumonia": "1.0"}
        rel = f"CheXpert-v1.0-small/valid/patient{p:05d}/study1/view1_frontal.jpg"
        valid.append(_chexpert_row(rel, "PA", {k: v for k, v in codes.items()} | {
            o: "0.0" for o in CHEXPERT_OBS if o not in codes}))
        _save(parent / rel, pixels(int("No Finding" not in codes), i))
        i += 1
    (root / "train.csv").write_text("\n".join(train) + "\n")
    (root / "valid.csv").write_text("\n".join(valid) + "\n")
    return root


def _gz(path: Path, lines: list[str]) -> None:
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")


def mimic(root: Path, pixels: Pixels) -> Path:
    """The three mimic-cxr-2.0.0-*.csv.gz sheets and files/pXX/pSUBJECT/sSTUDY/DICOM.jpg: 18 subjects, one study
    each with a PA and a LATERAL image; subjects 1..12 train, 13..15 validate, 16..18 test; study 4 unlabelled."""
    split, labels, meta = ["dicom_id,study_id,subject_id,split"], ["subject_id,study_id," + ",".join(MIMIC_OBS)], \
        [MIMIC_META]
    cycle = ({"No Finding": "1.0"}, {"Pneumonia": "1.0"}, {"No Finding": "1.0"}, {"Pneumonia": "-1.0"},
             {"Pneumonia": "1.0", "Edema": "1.0"}, {"Cardiomegaly": "1.0"})
    for n in range(1, 19):
        subject, study = 10000000 + n * 37, 50000000 + n * 11
        which = "train" if n <= 12 else "validate" if n <= 15 else "test"
        codes = cycle[n % len(cycle)]
        if n != 4:
            labels.append(f"{subject},{study}," + ",".join(codes.get(o, "") for o in MIMIC_OBS))
        for j, view in enumerate(("PA", "LATERAL")):
            dicom = f"{n:08x}-{j:04x}-5f2a1c3e-9b7d4e10-{n * 7 + j:08x}"
            split.append(f"{dicom},{study},{subject},{which}")
            meta.append(f"{dicom},{subject},{study},CHEST (PA AND LAT),{view},3056,2544,21800506,213014.531,"
                        f"CHEST (PA AND LAT),{'postero-anterior' if j == 0 else 'lateral'},Erect")
            _save(root / "files" / f"p{str(subject)[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg",
                  pixels(int("No Finding" not in codes), 2 * n + j))
    _gz(root / "mimic-cxr-2.0.0-split.csv.gz", split)
    _gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", labels)
    _gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", meta)
    return root


def write_dicom(path: Path, pixels: np.ndarray) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel, ds.PixelRepresentation = 8, 8, 7, 1, 0
    ds.PhotometricInterpretation, ds.ViewPosition = "MONOCHROME2", "PA"
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def rsna(root: Path, pixels: Pixels, n: int = 40) -> Path:
    """stage_2_train_labels.csv (two box rows per positive), stage_2_detailed_class_info.csv, DICOMs."""
    labels, detail = ["patientId,x,y,width,height,Target"], ["patientId,class"]
    for i in range(n):
        pid = f"{i:08x}-3c1d-4b7e-9f2a-{i * 131:012x}"
        kind = i % 4  # 0, 2 Normal; 1 Lung Opacity; 3 No Lung Opacity / Not Normal
        if kind == 1:
            labels += [f"{pid},264.0,152.0,213.0,379.0,1", f"{pid},562.0,152.0,256.0,453.0,1"]
            detail += [f"{pid},Lung Opacity"] * 2
        else:
            labels.append(f"{pid},,,,,0")
            detail.append(f"{pid},{'No Lung Opacity / Not Normal' if kind == 3 else 'Normal'}")
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", pixels(int(kind == 1), i))
    (root / "stage_2_train_labels.csv").write_text("\n".join(labels) + "\n")
    (root / "stage_2_detailed_class_info.csv").write_text("\n".join(detail) + "\n")
    return root


def manifest(root: Path, pixels: Pixels, n: int = 36) -> Path:
    """manifest.csv `path,label,patient` (paths relative to it), images in scans/; labels NORMAL / PNEUMONIA."""
    lines = ["path,label,patient"]
    for i in range(n):
        label = int(i % 3 == 0)
        rel = f"scans/img_{i:03d}.png"
        lines.append(f"{rel},{('NORMAL', 'PNEUMONIA')[label]},pt{i // 2}")
        _save(root / rel, pixels(label, i))
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"
