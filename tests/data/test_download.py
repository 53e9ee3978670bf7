"""LFW download against a local HTTP server (no internet): success, checksum mismatch, offline."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import shutil
import tarfile
import threading
import time
from pathlib import Path

import pytest

from evalkit.data import download as dl
from evalkit.data.download import DownloadError, download_lfw, tree_digest, verify_lfw

TEXT_FILES = [f.dest for f in dl.LFW_FILES]
TWO_IMAGES = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Zico/Zico_0001.jpg"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def mirror(lfw_root, tmp_path):
    """A folder laid out like the LFW root (text files, labels, a 2-image tgz), served over HTTP."""
    root = tmp_path / "mirror"
    for name in TEXT_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lfw_root / name, root / name)
    with tarfile.open(root / "lfw-deepfunneled.tgz", "w:gz") as tar:
        for rel in TWO_IMAGES:
            tar.add(lfw_root / "lfw-deepfunneled" / rel, arcname=f"lfw-deepfunneled/{rel}")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _tiny_digest(lfw_root: Path, tmp_path: Path) -> str:
    ref = tmp_path / "ref"
    for rel in TWO_IMAGES:
        (ref / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lfw_root / "lfw-deepfunneled" / rel, ref / rel)
    return tree_digest(ref)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def test_text_files_download_and_skip(mirror, tmp_path):
    root, url = mirror
    dest = tmp_path / "data" / "lfw"
    status = download_lfw(dest, base_urls=url, timeout=5, files=TEXT_FILES)
    assert status == {name: "downloaded" for name in TEXT_FILES}
    for f in dl.LFW_FILES:
        assert dl.file_sha256(dest / f.dest) == f.sha256
    assert _leftovers(dest) == []
    # present and verified -> skipped, even with the mirror gone
    shutil.rmtree(root / "labels")
    assert download_lfw(dest, base_urls=url, timeout=5, files=TEXT_FILES) == {n: "present" for n in TEXT_FILES}


def test_per_source_base_urls(mirror, tmp_path):
    _, url = mirror
    bases = {"lfw": url + "/", "gender_labels": url + "/labels/", "race_labels": url + "/labels"}
    dest = tmp_path / "lfw"
    status = download_lfw(dest, base_urls=bases, timeout=5, files=["pairs.txt", "labels/lfw_race_dict.json"])
    assert status == {"pairs.txt": "downloaded", "labels/lfw_race_dict.json": "downloaded"}


def test_checksum_mismatch(mirror, tmp_path):
    root, url = mirror
    with open(root / "pairs.txt", "a") as fh:
        fh.write("tampered\n")
    actual = hashlib.sha256((root / "pairs.txt").read_bytes()).hexdigest()
    dest = tmp_path / "lfw"
    with pytest.raises(DownloadError) as err:
        download_lfw(dest, base_urls=url, timeout=5, files=["pairs.txt"])
    msg = str(err.value)
    assert "pairs.txt" in msg and dl.LFW_FILES[0].sha256 in msg and actual in msg
    assert not (dest / "pairs.txt").exists()
    assert _leftovers(dest) == []  # the temporary file is gone


def test_wrong_local_file_is_replaced(mirror, tmp_path):
    _, url = mirror
    dest = tmp_path / "lfw"
    dest.mkdir()
    (dest / "people.txt").write_text("not the real file\n")
    assert download_lfw(dest, base_urls=url, timeout=5, files=["people.txt"]) == {"people.txt": "downloaded"}
    assert verify_lfw(dest)["people.txt"] == "ok"


def test_unreachable_fails_fast_with_layout(tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download_lfw(tmp_path / "lfw", base_urls="http://127.0.0.1:9", timeout=1)
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert "http://127.0.0.1:9/pairs.txt" in msg
    assert "To proceed without network, put these files under" in msg
    for name in ("lfw-deepfunneled/NAME/NAME_NNNN.jpg", "labels/male_names.txt", "labels/female_names.txt",
                 "labels/lfw_race_dict.json", "pairsDevTest.txt", "people.txt"):
        assert name in msg
    assert not any((tmp_path / "lfw").iterdir())


def test_http_404_names_url(mirror, tmp_path):
    root, url = mirror
    (root / "README.txt").unlink()
    with pytest.raises(DownloadError, match=r"could not download README\.txt from http://127\.0\.0\.1:\d+/README\.txt"):
        download_lfw(tmp_path / "lfw", base_urls=url, timeout=5, files=["README.txt"])


def test_images_archive(mirror, lfw_root, tmp_path):
    root, url = mirror
    digest = _tiny_digest(lfw_root, tmp_path)
    md5 = hashlib.md5((root / "lfw-deepfunneled.tgz").read_bytes()).hexdigest()
    dest = tmp_path / "lfw"
    status = download_lfw(dest, base_urls=url, timeout=5, expected_tree_digest=digest, archive_md5=md5)
    assert status["lfw-deepfunneled"] == "downloaded"
    assert all(status[n] == "downloaded" for n in TEXT_FILES)
    for rel in TWO_IMAGES:
        assert (dest / "lfw-deepfunneled" / rel).read_bytes() == (lfw_root / "lfw-deepfunneled" / rel).read_bytes()
    assert not (dest / "lfw-deepfunneled.tgz").exists()  # archive removed after unpacking
    assert _leftovers(dest) == []
    assert tree_digest(dest / "lfw-deepfunneled") == digest
    report = verify_lfw(dest, expected_tree_digest=digest)
    assert set(report.values()) == {"ok"}
    # a second run verifies the folder and downloads nothing
    again = download_lfw(dest, base_urls="http://127.0.0.1:9", timeout=1, expected_tree_digest=digest)
    assert set(again.values()) == {"present"}
    # with the official digest the 2-image folder does not verify
    with pytest.raises(DownloadError, match="exists but does not verify"):
        download_lfw(dest, base_urls=url, timeout=5, files=["lfw-deepfunneled"])


def test_images_digest_mismatch_discards(mirror, tmp_path):
    _, url = mirror
    dest = tmp_path / "lfw"
    with pytest.raises(DownloadError) as err:
        download_lfw(dest, base_urls=url, timeout=5, files=["lfw-deepfunneled"], archive_md5=None,
                     expected_tree_digest="0" * 64)
    msg = str(err.value)
    assert "lfw-deepfunneled/" in msg and "0" * 64 in msg and "tree digest" in msg
    assert not (dest / "lfw-deepfunneled").exists()
    assert _leftovers(dest) == []


def test_archive_md5_mismatch(mirror, tmp_path):
    _, url = mirror
    dest = tmp_path / "lfw"
    with pytest.raises(DownloadError, match=f"lfw-deepfunneled.tgz.*expected MD5 {dl.LFW_DEEPFUNNELED_TGZ_MD5}"):
        download_lfw(dest, base_urls=url, timeout=5, files=["lfw-deepfunneled"])
    assert not (dest / "lfw-deepfunneled.tgz").exists() and _leftovers(dest) == []


def test_force_replaces_images(mirror, lfw_root, tmp_path):
    _, url = mirror
    digest = _tiny_digest(lfw_root, tmp_path)
    dest = tmp_path / "lfw"
    (dest / "lfw-deepfunneled" / "Someone").mkdir(parents=True)
    (dest / "lfw-deepfunneled" / "Someone" / "Someone_0001.jpg").write_bytes(b"x")
    with pytest.raises(DownloadError, match="pass force=True"):
        download_lfw(dest, base_urls=url, timeout=5, files=["lfw-deepfunneled"], archive_md5=None,
                     expected_tree_digest=digest)
    status = download_lfw(dest, base_urls=url, timeout=5, force=True, files=["lfw-deepfunneled"],
                          archive_md5=None, expected_tree_digest=digest, keep_archive=True)
    assert status == {"lfw-deepfunneled": "downloaded"}
    assert not (dest / "lfw-deepfunneled" / "Someone").exists()
    assert (dest / "lfw-deepfunneled.tgz").is_file()


def test_verified_archive_is_reused_offline(mirror, lfw_root, tmp_path):
    """A kept archive whose MD5 matches is unpacked again without the network; a wrong one is not used."""
    root, url = mirror
    digest = _tiny_digest(lfw_root, tmp_path)
    md5 = hashlib.md5((root / "lfw-deepfunneled.tgz").read_bytes()).hexdigest()
    dest = tmp_path / "lfw"
    download_lfw(dest, base_urls=url, timeout=5, files=["lfw-deepfunneled"], archive_md5=md5,
                 expected_tree_digest=digest, keep_archive=True)
    shutil.rmtree(dest / "lfw-deepfunneled")
    status = download_lfw(dest, base_urls="http://127.0.0.1:9", timeout=1, files=["lfw-deepfunneled"],
                          archive_md5=md5, expected_tree_digest=digest)
    assert status == {"lfw-deepfunneled": "downloaded"} and tree_digest(dest / "lfw-deepfunneled") == digest
    assert not (dest / "lfw-deepfunneled.tgz").exists()
    (dest / "lfw-deepfunneled.tgz").write_bytes(b"not the archive")   # MD5 differs: fetched again
    shutil.rmtree(dest / "lfw-deepfunneled")
    with pytest.raises(DownloadError, match="could not download lfw-deepfunneled.tgz"):
        download_lfw(dest, base_urls="http://127.0.0.1:9", timeout=1, files=["lfw-deepfunneled"],
                     archive_md5=md5, expected_tree_digest=digest)


def test_unsafe_archive_member_refused(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    with tarfile.open(root / "lfw-deepfunneled.tgz", "w:gz") as tar:
        data = b"evil"
        info = tarfile.TarInfo("lfw-deepfunneled/../../evil.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with pytest.raises(DownloadError, match="unexpected member"):
            download_lfw(tmp_path / "lfw", base_urls=f"http://127.0.0.1:{server.server_address[1]}", timeout=5,
                         files=["lfw-deepfunneled"], archive_md5=None, expected_tree_digest=None)
    finally:
        server.shutdown()
        server.server_close()
    assert not (tmp_path / "evil.txt").exists()


def test_unknown_file_name(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'pairs.txt'"):
        download_lfw(tmp_path / "lfw", files=["pair.txt"])
    assert not (tmp_path / "lfw").exists()


def test_tree_digest_definition(tmp_path):
    (tmp_path / "B").mkdir()
    (tmp_path / "A").mkdir()
    (tmp_path / "B" / "B_0001.jpg").write_bytes(b"b")
    (tmp_path / "A" / "A_0001.jpg").write_bytes(b"a")
    (tmp_path / ".DS_Store").write_bytes(b"ignored")
    h = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    expected = h(f"A/A_0001.jpg\t{h(b'a')}\nB/B_0001.jpg\t{h(b'b')}\n".encode())
    assert tree_digest(tmp_path) == expected


def test_constants_match_the_staged_copy(lfw_root):
    """The checksums in download.py are those of the staged LFW copy (and its 13,233 images)."""
    assert set(verify_lfw(lfw_root).values()) == {"ok"}
    assert len(list((lfw_root / "lfw-deepfunneled").rglob("*.jpg"))) == dl.LFW_DEEPFUNNELED_IMAGE_COUNT
