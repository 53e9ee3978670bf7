"""Issue 13, item 8: the CSV reader and the image reader under arbitrary input (hypothesis).

Arbitrary bytes, encodings, line endings and path strings: the CSV reader returns a samples table
whose every path resolves inside the CSV's folder, or raises DatasetError (the documented clear
error); the image reader returns a BGR uint8 image or raises EnrolmentFailure with a known reason.
Nothing else escapes, nothing hangs (each example has a deadline). Bounded: few examples, small
inputs, so the whole file runs in seconds.
"""

from __future__ import annotations

import os
from datetime import timedelta

import cv2
import numpy as np
import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.backends.base import FAILURE_REASONS, EnrolmentFailure, read_image_bgr
from evalkit.data.csv_table import load_csv_dataset
from evalkit.data.samples import DatasetError, confine_paths

FUZZ = settings(max_examples=60, deadline=timedelta(seconds=10), derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

PATH_ALPHABET = st.sampled_from(list("ab./\\~-_ :*?\"'\t") + ["..", "../", "/etc/passwd", "img", "\u00e9", "\u202e"])
path_strings = st.lists(PATH_ALPHABET, min_size=1, max_size=12).map("".join)


def _inside(path: str, root) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def _load_or_clear_error(csv_file, root):
    try:
        s = load_csv_dataset(csv_file)
    except DatasetError as exc:
        assert str(exc)            # a message, always
        return None
    for p in s.paths:
        assert _inside(p, root), p
    return s


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "data"
    (d / "img").mkdir(parents=True)
    (d / "img" / "a.jpg").write_bytes(b"x")
    os.symlink("/etc", d / "img" / "escape")          # a symlink out of the folder, for paths to find
    return d


@FUZZ
@given(data=st.binary(max_size=2048))
def test_csv_reader_on_arbitrary_bytes(root, data):
    f = root / "d.csv"
    f.write_bytes(data)
    _load_or_clear_error(f, root)


@FUZZ
@given(cells=st.lists(st.lists(st.text(max_size=12), min_size=2, max_size=4), min_size=1, max_size=8),
       ending=st.sampled_from(["\n", "\r\n", "\r"]),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]),
       header=st.sampled_from(["path,subject", "path,subject,sex", "subject,path,age", "path;subject"]))
def test_csv_reader_on_arbitrary_text_encodings_and_line_endings(root, cells, ending, encoding, header):
    import csv
    import io

    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator=ending).writerows([header.split(","), *cells])
    try:
        data = buf.getvalue().encode(encoding)
    except UnicodeEncodeError:
        data = buf.getvalue().encode("utf-8", "surrogatepass")
    f = root / "d.csv"
    f.write_bytes(data)
    _load_or_clear_error(f, root)


@FUZZ
@given(paths=st.lists(path_strings, min_size=1, max_size=5))
def test_csv_paths_never_escape_the_root(root, paths):
    import csv

    f = root / "d.csv"
    with open(f, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "subject"])
        for k, p in enumerate(paths):
            w.writerow([p, f"s{k}"])
    _load_or_clear_error(f, root)


@FUZZ
@given(paths=st.lists(path_strings, min_size=1, max_size=5))
def test_confine_paths_on_arbitrary_path_strings(root, paths):
    full = [os.path.normpath(os.path.join(root, p)) for p in paths]
    try:
        confine_paths(full, root)
    except DatasetError:
        return
    assert all(_inside(p, root) for p in full)


def _check_image(path):
    try:
        img = read_image_bgr(str(path))
    except EnrolmentFailure as exc:
        assert exc.reason in FAILURE_REASONS and str(path) not in exc.detail
        return None
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    return img


@FUZZ
@given(data=st.binary(max_size=4096))
def test_image_reader_on_arbitrary_bytes(tmp_path, data):
    p = tmp_path / "x.jpg"
    p.write_bytes(data)
    _check_image(p)


def _seed_images():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    return [cv2.imencode(ext, img)[1].tobytes() for ext in (".jpg", ".png", ".bmp", ".webp")]


SEEDS = _seed_images()


@FUZZ
@given(which=st.integers(0, len(SEEDS) - 1), cut=st.integers(0, 100),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6))
def test_image_reader_on_damaged_real_images(tmp_path, which, cut, flips):
    """Real JPEG/PNG/BMP/WebP bytes, truncated and with bytes overwritten."""
    data = bytearray(SEEDS[which][: max(1, len(SEEDS[which]) * cut // 100)])
    for pos, val in flips:
        if data:
            data[pos % len(data)] = val
    p = tmp_path / "x.img"
    p.write_bytes(bytes(data))
    _check_image(p)
