"""Issue 13, items 1, 5 and 6 (CSV side): sample paths confined to the CSV's folder, only regular
files, a latin-1 CSV named with its line and the encoding option, numeric columns banded by a
stated default rule or refused with the override to type."""

from __future__ import annotations

import os

import pytest

from evalkit.data.csv_table import load_csv_dataset
from evalkit.data.samples import DatasetError


def _csv(tmp_path, body: str, name="d.csv", encoding="utf-8"):
    root = tmp_path / "data"
    (root / "img").mkdir(parents=True, exist_ok=True)
    for f in ("a.jpg", "b.jpg", "c.jpg"):
        (root / "img" / f).write_bytes(b"\xff\xd8 not decoded here")
    p = root / name
    p.write_bytes(body.encode(encoding))
    return p


@pytest.mark.parametrize("bad", ["../../../../etc/passwd", "/etc/passwd", "img/../../outside.jpg"])
def test_paths_outside_the_folder_are_refused_naming_the_row(tmp_path, bad):
    p = _csv(tmp_path, f"path,subject\nimg/a.jpg,ann\n{bad},bob\n")
    with pytest.raises(DatasetError, match=r"row 2 \(line 3\): path .* is outside the dataset folder") as e:
        load_csv_dataset(p)
    assert "dataset.allow_outside_root" in str(e.value)


def test_symlink_escaping_the_folder_is_refused(tmp_path):
    p = _csv(tmp_path, "path,subject\nimg/a.jpg,ann\nimg/link.jpg,bob\n")
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"private")
    os.symlink(secret, p.parent / "img" / "link.jpg")
    with pytest.raises(DatasetError, match="resolves to .*secret.jpg"):
        load_csv_dataset(p)
    os.symlink(tmp_path, p.parent / "img" / "up")            # a symlinked folder too
    p.write_text("path,subject\nimg/up/secret.jpg,bob\n")
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        load_csv_dataset(p)


def test_symlink_inside_the_folder_is_fine(tmp_path):
    p = _csv(tmp_path, "path,subject\nimg/a.jpg,ann\nimg/alias.jpg,bob\n")
    os.symlink(p.parent / "img" / "b.jpg", p.parent / "img" / "alias.jpg")
    assert len(load_csv_dataset(p)) == 2


def test_opt_in_allows_outside_paths_with_a_reason(tmp_path, caplog):
    p = _csv(tmp_path, "path,subject\nimg/a.jpg,ann\n/etc/hostname,bob\n")
    s = load_csv_dataset(p, allow_outside_root="images shared with another project")
    assert s.paths[1] == "/etc/hostname"
    assert "outside the dataset folder" in caplog.text


def test_device_and_folder_rows_are_refused_even_when_allowed(tmp_path):
    p = _csv(tmp_path, "path,subject\nimg/a.jpg,ann\n/dev/zero,bob\n")
    with pytest.raises(DatasetError, match=r"row 2 \(line 3\): path /dev/zero is a device"):
        load_csv_dataset(p, allow_outside_root="testing")
    p.write_text("path,subject\nimg,ann\n")
    with pytest.raises(DatasetError, match="is a folder, not an image file"):
        load_csv_dataset(p)


def test_latin1_csv_names_file_line_and_option(tmp_path):
    body = "path,subject,sex\nimg/a.jpg,ann,female\nimg/b.jpg,Jos\u00e9,male\n"
    p = _csv(tmp_path, body, encoding="latin-1")
    with pytest.raises(DatasetError) as e:
        load_csv_dataset(p)
    msg = str(e.value)
    assert str(p) in msg and "line 3" in msg and "dataset.encoding=latin-1" in msg and "e9" in msg
    s = load_csv_dataset(p, encoding="latin-1")
    assert s.subjects[1] == "Jos\u00e9"
    with pytest.raises(DatasetError, match="not an encoding Python knows"):
        load_csv_dataset(p, encoding="latin-9000")


def test_crlf_and_bom_still_work(tmp_path):
    p = _csv(tmp_path, "\ufeffpath,subject\r\nimg/a.jpg,ann\r\nimg/b.jpg,bob\r\n")
    assert load_csv_dataset(p).subjects.tolist() == ["ann", "bob"]


def test_nul_byte_is_a_clear_error(tmp_path):
    p = _csv(tmp_path, "path,subject\nimg/a.jpg,ann\x00\n")
    with pytest.raises(DatasetError, match="line 2: a NUL byte"):
        load_csv_dataset(p)


def test_numeric_age_gets_the_stated_default_bands(tmp_path):
    p = _csv(tmp_path, "path,subject,id,age\n" + "".join(f"img/a.jpg,p{k},i{k},{17 + 2 * k}\n" for k in range(29)))
    s = load_csv_dataset(p)
    assert sorted(set(s.attributes["age"])) == ["18-29", "30-44", "45-59", "<18", ">=60"]
    assert "default age bands" in s.label_sources["age"] and "+dataset.numeric_bands.age" in s.label_sources["age"]
    s = load_csv_dataset(p, numeric_bands={"age": [40]})            # an explicit rule wins
    assert sorted(set(s.attributes["age"])) == ["<40", ">=40"]


def test_other_numeric_column_refused_with_the_override(tmp_path):
    p = _csv(tmp_path, "path,subject,id,height,sex\n"
             + "".join(f"img/a.jpg,p{k},i{k},{150 + k},female\n" for k in range(29)))
    with pytest.raises(DatasetError) as e:
        load_csv_dataset(p)
    msg = str(e.value)
    assert "'height' holds numbers with 29 distinct values" in msg
    assert "+dataset.numeric_bands.height=[157,164,171]" in msg and "dataset.attributes=[sex]" in msg
    s = load_csv_dataset(p, numeric_bands={"height": [157, 164, 171]})     # the override as printed works
    assert len(set(s.attributes["height"])) == 4
    # a numeric code with few values (0/1) stays categorical
    p.write_text("path,subject,id,glasses\n" + "".join(f"img/a.jpg,p{k},i{k},{k % 2}\n" for k in range(29)))
    assert sorted(set(load_csv_dataset(p).attributes["glasses"])) == ["0", "1"]
