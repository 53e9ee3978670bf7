"""Issue 13, item 1 (image side): only regular files are opened, within a byte and a pixel cap;
giant and bomb images are a recorded ``too_large``, a truncated JPEG is ``unreadable`` (not
``no_face``), and failure details never name a path."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from evalkit.backends import build_backend
from evalkit.backends.base import (TOO_LARGE, UNREADABLE, EnrolmentFailure, ImageLimits, read_image_bgr,
                                   render_detail)

REPO = Path(__file__).resolve().parents[2]


def _png_bomb(path: Path, width: int = 50_000, height: int = 50_000) -> Path:
    """A 100-byte PNG whose header declares width x height pixels (7.5 GB decoded)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _reason(path, limits=None) -> EnrolmentFailure:
    with pytest.raises(EnrolmentFailure) as info:
        read_image_bgr(str(path), limits)
    return info.value


def test_device_file_is_refused_and_never_read():
    """/dev/zero never ends: hashing it (the cache key) or reading it must not start. Run in a
    subprocess with a timeout, so the old behaviour (reading forever) fails instead of hanging."""
    code = ("from evalkit.embeddings import image_key; from evalkit.backends.base import read_image_bgr, "
            "EnrolmentFailure\nassert image_key('/dev/zero') is None\ntry:\n    read_image_bgr('/dev/zero')\n"
            "except EnrolmentFailure as e:\n    print(e.reason, e.detail)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("unreadable not a regular file")


def test_folder_and_fifo_are_unreadable(tmp_path):
    assert _reason(tmp_path).reason == UNREADABLE
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    e = _reason(fifo)   # opened non-blocking: no writer, no hang
    assert e.reason == UNREADABLE and "regular file" in e.detail


def test_decompression_bomb_is_too_large_from_its_header(tmp_path):
    e = _reason(_png_bomb(tmp_path / "bomb.png"))
    assert e.reason == TOO_LARGE
    assert "50,000 x 50,000" in e.detail and "backend.max_image_pixels" in e.detail
    assert str(tmp_path) not in e.detail


def test_caps_are_configurable(tmp_path):
    p = tmp_path / "big.png"
    cv2.imwrite(str(p), np.full((300, 400, 3), 90, np.uint8))
    assert read_image_bgr(str(p)).shape == (300, 400, 3)
    assert _reason(p, ImageLimits(max_pixels=100_000)).reason == TOO_LARGE          # 120,000 pixels
    e = _reason(p, ImageLimits(max_bytes=100))
    assert e.reason == TOO_LARGE and "backend.max_image_bytes" in e.detail
    assert read_image_bgr(str(p), ImageLimits(max_bytes=None, max_pixels=None)).shape == (300, 400, 3)


def test_backend_option_sets_the_caps_and_records_too_large(tmp_path):
    """backend.max_image_pixels reaches the backend (every family), and the failure is recorded per
    image with the reason, like the others."""
    p = tmp_path / "wide.png"
    cv2.imwrite(str(p), np.full((200, 200, 3), 90, np.uint8))
    res = build_backend("lbph", {"max_image_pixels": 1000}).embed([str(p), str(_png_bomb(tmp_path / "b.png"))])
    assert res.failures == [TOO_LARGE, TOO_LARGE]
    with pytest.raises(ValueError, match="max_image_pixels"):
        build_backend("lbph", {"max_image_pixels": -3})


def test_truncated_jpeg_is_unreadable_not_no_face(tmp_path):
    """OpenCV decodes a truncated JPEG partially (grey below the cut) without complaint; the
    detector then says no_face. The missing end-of-image marker makes it ``unreadable``."""
    rng = np.random.default_rng(0)
    full = tmp_path / "whole.jpg"
    cv2.imwrite(str(full), rng.integers(0, 255, (240, 240, 3), dtype=np.uint8))
    data = full.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) * 6 // 10])
    assert cv2.imread(str(cut)) is not None            # what OpenCV alone makes of it
    e = _reason(cut)
    assert e.reason == UNREADABLE and "truncated JPEG" in e.detail
    assert read_image_bgr(str(full)).shape == (240, 240, 3)
    padded = tmp_path / "padded.jpg"                  # bytes after the end marker are fine
    padded.write_bytes(data + b"\0" * 100)
    assert read_image_bgr(str(padded)).shape == (240, 240, 3)
    res = build_backend("lbph", {}).embed([str(cut)])
    assert res.failures == [UNREADABLE]


def test_truncated_png_is_unreadable(tmp_path):
    p = tmp_path / "whole.png"
    cv2.imwrite(str(p), np.random.default_rng(1).integers(0, 255, (120, 120, 3), dtype=np.uint8))
    cut = tmp_path / "cut.png"
    cut.write_bytes(p.read_bytes()[:-200])
    assert _reason(cut).reason == UNREADABLE


def test_details_never_name_the_path(tmp_path):
    junk = tmp_path / "dataset_a" / "not_an_image.jpg"
    junk.parent.mkdir()
    junk.write_bytes(b"hello, not an image")
    res = build_backend("lbph", {}).embed([str(junk)])
    assert res.failures == [UNREADABLE]
    assert str(tmp_path) not in res.details[0] and "dataset_a" not in res.details[0]
    # a detail cached by an older version, naming the path the image had then, is shown pathless
    assert render_detail("cannot decode /data/other_dataset/x.jpg") == "cannot decode (not an image format OpenCV reads)"
    assert render_detail("hog detector found no face") == "hog detector found no face"


def test_exif_orientation_and_pixels_as_imread(tmp_path):
    """Reading the bytes and decoding them gives OpenCV's imread pixels exactly (EXIF orientation
    applied), so the embedding cache stays valid."""
    from PIL import Image

    img = Image.fromarray(np.random.default_rng(2).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6     # rotate 90
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif)
    np.testing.assert_array_equal(read_image_bgr(str(p)), cv2.imread(str(p), cv2.IMREAD_COLOR))
