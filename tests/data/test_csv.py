"""CSV dataset adapter over a handful of real LFW images."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from evalkit.data.csv_table import band_label, band_labels, load_csv_dataset
from evalkit.data.samples import UNLABELLED, DatasetError

IMAGES = [
    ("George_W_Bush", 1, "male", "caucasian", "56"),
    ("George_W_Bush", 2, "male", "caucasian", "56"),
    ("Serena_Williams", 1, "female", "african", "21"),
    ("Serena_Williams", 2, "female", "", "21"),
    ("Junichiro_Koizumi", 1, "male", "eastasian", "NA"),
    ("Junichiro_Koizumi", 2, "male", "eastasian", "61"),
    ("Jennifer_Lopez", 1, "", "latino", "17"),
    ("Jennifer_Lopez", 2, "female", "latino", ""),
]


@pytest.fixture
def table(lfw_root, tmp_path):
    """A CSV in tmp_path over 8 real LFW images copied beside it (paths must stay inside the CSV's
    folder): relative paths for even rows, absolute for odd."""
    rows = ["path,subject,sex,ethnicity,age"]
    for k, (name, i, sex, eth, age) in enumerate(IMAGES):
        src = lfw_root / "lfw-deepfunneled" / name / f"{name}_{i:04d}.jpg"
        img = tmp_path / "lfw-deepfunneled" / name / src.name
        img.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, img)
        path = os.path.relpath(img, tmp_path) if k % 2 == 0 else str(img.absolute())
        rows.append(f"{path},{name},{sex},{eth},{age}")
    csv = tmp_path / "faces.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def test_load(table, lfw_root):
    s = load_csv_dataset(table)
    assert s.name == "faces"
    assert len(s) == 8
    assert s.attribute_names == ["sex", "ethnicity", "age"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in s.paths)
    assert Path(s.paths[0]).samefile(table.parent / "lfw-deepfunneled/George_W_Bush/George_W_Bush_0001.jpg")
    assert s.ids[1] == str((table.parent / "lfw-deepfunneled/George_W_Bush/George_W_Bush_0002.jpg").absolute())
    assert s.attributes["sex"].tolist()[6] == UNLABELLED
    assert s.attributes["ethnicity"].tolist()[3] == UNLABELLED
    # a numeric age column without numeric_bands gets the stated default bands
    assert s.attributes["age"].tolist() == ["45-59", "45-59", "18-29", "18-29", UNLABELLED, ">=60", "<18", UNLABELLED]
    assert "default age bands" in s.label_sources["age"] and s.banded == ("age",)
    assert s.label_sources["sex"].startswith(f"column sex of {table.absolute()}")
    cov = s.label_coverage()["sex"]
    assert cov["male"] == {"subjects": 2, "samples": 4} and cov[UNLABELLED] == {"subjects": 1, "samples": 1}


def test_attribute_subset_and_age_bands(table):
    s = load_csv_dataset(table, name="mini", attributes=["sex", "age"], numeric_bands={"age": [18, 30, 45, 60]})
    assert s.name == "mini"
    assert s.attribute_names == ["sex", "age"]
    assert s.attributes["age"].tolist() == [
        "45-59", "45-59", "18-29", "18-29", UNLABELLED, ">=60", "<18", UNLABELLED,
    ]
    assert "[18, 30, 45, 60]" in s.label_sources["age"]


def test_band_labels():
    assert band_labels([18, 30, 45, 60]) == ["<18", "18-29", "30-44", "45-59", ">=60"]
    assert band_labels([18.5, 30]) == ["<18.5", "[18.5,30)", ">=30"]
    assert band_label(29.9, [18, 30]) == "18-29"
    assert band_label(30, [18, 30]) == ">=30"
    assert band_label(17.99, [18, 30]) == "<18"


def test_id_column_and_missing_file_kept(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("id,path,subject,sex\nx1,img/a.jpg,alice,female\nx2,/nowhere/b.jpg,bob,n/a\n")
    s = load_csv_dataset(csv, allow_outside_root="test: one image lives elsewhere")
    assert s.ids.tolist() == ["x1", "x2"]
    assert s.paths.tolist() == [str(tmp_path.absolute() / "img/a.jpg"), "/nowhere/b.jpg"]
    assert s.attributes["sex"].tolist() == ["female", UNLABELLED]


def test_missing_required_column(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("file,subject,sex\na.jpg,alice,female\n")
    with pytest.raises(DatasetError, match=r"lacks required column\(s\) \['path'\]; columns found: \['file', 'subject', 'sex'\]"):
        load_csv_dataset(csv)


def test_typo_attribute_has_hint(table):
    with pytest.raises(DatasetError, match="'ethnicty' is not a column.*did you mean 'ethnicity'"):
        load_csv_dataset(table, attributes=["sex", "ethnicty"])
    with pytest.raises(DatasetError, match="did you mean 'age'"):
        load_csv_dataset(table, numeric_bands={"agee": [18]})


def test_non_numeric_age(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("path,subject,age\na.jpg,alice,30\nb.jpg,bob,thirty\n")
    with pytest.raises(DatasetError, match=r"row 2 \(line 3\): column 'age' must be a number, got 'thirty'"):
        load_csv_dataset(csv, numeric_bands={"age": [18, 30]})


def test_empty_subject_and_path(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("path,subject,sex\na.jpg,alice,female\nb.jpg,,male\n")
    with pytest.raises(DatasetError, match=r"row 2 \(line 3\): empty 'subject'"):
        load_csv_dataset(csv)
    csv.write_text("path,subject,sex\n ,alice,female\n")
    with pytest.raises(DatasetError, match=r"row 1 \(line 2\): empty 'path'"):
        load_csv_dataset(csv)


def test_other_errors(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("path,subject\na.jpg,alice\na.jpg,bob\n")
    with pytest.raises(DatasetError, match="id 'a.jpg' already used on row 1"):
        load_csv_dataset(csv)
    csv.write_text("path,subject\na.jpg,alice,extra\n")
    with pytest.raises(DatasetError, match="3 fields, the header has 2"):
        load_csv_dataset(csv)
    csv.write_text("path,subject,age\na.jpg,alice,3\n")
    with pytest.raises(DatasetError, match="strictly ascending"):
        load_csv_dataset(csv, numeric_bands={"age": [30, 18]})
