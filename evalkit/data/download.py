"""Fetch LFW and its third-party label files into the layout :mod:`evalkit.data.lfw` reads.

Layout under ``dest_root`` (the same as a hand-staged copy)::

    lfw-deepfunneled/NAME/NAME_NNNN.jpg   unpacked from lfw-deepfunneled.tgz (official LFW site)
    pairs.txt  pairsDevTrain.txt  pairsDevTest.txt
    people.txt  peopleDevTrain.txt  peopleDevTest.txt  README.txt     (official LFW site)
    labels/male_names.txt  labels/female_names.txt    (Afifi & Abdelhamed lfw-gender lists)
    labels/lfw_race_dict.json                         (usc-sail mica-race-from-face)

Every file is checked against a SHA-256 fixed in this module. The image archive is checked by
the published MD5 of ``lfw-deepfunneled.tgz`` (the one torchvision uses) and, after unpacking,
by a SHA-256 *tree digest* of the image folder (:func:`tree_digest`), which also lets
``evalkit data verify`` check a copy that was staged by hand.

Downloads go to a temporary file next to the destination and are renamed into place only when
the checksum matches; a mismatch raises :class:`DownloadError` and leaves nothing behind. The
network is tried once per file with a short timeout: when it is unreachable the error names the
URL and spells out which files to put where to proceed offline.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import logging
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

from evalkit.hashing import file_digest, file_sha256

__all__ = [
    "DownloadError",
    "RemoteFile",
    "LFW_BASE_URL",
    "GENDER_LABELS_COMMIT",
    "GENDER_LABELS_BASE_URL",
    "RACE_LABELS_BASE_URL",
    "DEFAULT_BASE_URLS",
    "LFW_FILES",
    "LFW_ARCHIVE",
    "LFW_IMAGES_DIR",
    "LFW_DEEPFUNNELED_TGZ_MD5",
    "LFW_DEEPFUNNELED_TREE_DIGEST",
    "LFW_DEEPFUNNELED_IMAGE_COUNT",
    "download_lfw",
    "verify_lfw",
    "tree_digest",
    "file_sha256",
    "offline_instructions",
]

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """A download that failed or did not verify; the message says which file and what to do."""


# ---------------------------------------------------------------------------------------------
# where each file comes from

#: The official LFW site (University of Massachusetts, Amherst).
LFW_BASE_URL = "http://vis-www.cs.umass.edu/lfw/"
#: Commit of github.com/Lukeli0425/Gender-Classification holding male_names.txt /
#: female_names.txt (M. Afifi's "lfw-gender" lists). Only this abbreviated hash is recorded;
#: the SHA-256 checks below pin the content whatever the URL resolves to.
GENDER_LABELS_COMMIT = "efdba063"
GENDER_LABELS_BASE_URL = (
    f"https://raw.githubusercontent.com/Lukeli0425/Gender-Classification/{GENDER_LABELS_COMMIT}/"
)
#: github.com/usc-sail/mica-race-from-face (MIT licence), file lfw_race_dict.json at the top level.
RACE_LABELS_BASE_URL = "https://raw.githubusercontent.com/usc-sail/mica-race-from-face/master/"

DEFAULT_BASE_URLS = {
    "lfw": LFW_BASE_URL,
    "gender_labels": GENDER_LABELS_BASE_URL,
    "race_labels": RACE_LABELS_BASE_URL,
}


@dataclass(frozen=True)
class RemoteFile:
    """One file of the layout.

    Attributes:
        dest: path under the destination root (POSIX form), e.g. ``"labels/male_names.txt"``.
        source: key of the base URL it is fetched from (see :data:`DEFAULT_BASE_URLS`).
        remote_name: file name under that base URL.
        sha256: expected SHA-256 (None for the archive, checked by MD5 + tree digest instead).
        md5: published MD5, where one exists.
    """

    dest: str
    source: str
    remote_name: str
    sha256: str | None
    md5: str | None = None


# SHA-256 computed from the staged copy in /work/shared/datasets/lfw; the MD5s agree with the
# ones torchvision publishes for the official files (torchvision/datasets/lfw.py).
LFW_FILES: tuple[RemoteFile, ...] = (
    RemoteFile("pairs.txt", "lfw", "pairs.txt",
               "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592",
               "9f1ba174e4e1c508ff7cdf10ac338a7d"),
    RemoteFile("pairsDevTrain.txt", "lfw", "pairsDevTrain.txt",
               "1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa",
               "4f27cbf15b2da4a85c1907eb4181ad21"),
    RemoteFile("pairsDevTest.txt", "lfw", "pairsDevTest.txt",
               "7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c",
               "5132f7440eb68cf58910c8a45a2ac10b"),
    RemoteFile("people.txt", "lfw", "people.txt",
               "bc8fa2b7f25c895cf7efb6de4f4fc27ca8b8d1cfa63350ad8b96eae2b198d365",
               "450f0863dd89e85e73936a6d71a3474b"),
    RemoteFile("peopleDevTrain.txt", "lfw", "peopleDevTrain.txt",
               "2e58df13ba4cc143189336e001cc2c195f1dfa5b29a6475c02857be353c2a2fa",
               "54eaac34beb6d042ed3a7d883e247a21"),
    RemoteFile("peopleDevTest.txt", "lfw", "peopleDevTest.txt",
               "c3ed1f90499473401542101a56c14c1d82396bb8218c67a356d7460601047555",
               "e4bf5be0a43b5dcd9dc5ccfcb8fb19c5"),
    RemoteFile("README.txt", "lfw", "README.txt",
               "34c6fba9b6d7303d65623d3a65457059ffe129ffc5c1ee27cd35762a155980b7"),
    RemoteFile("labels/male_names.txt", "gender_labels", "male_names.txt",
               "6ed9cd7a08a50aba4e9ea0d5edba25ae13871896ee2f3dc205b39fcd2a6bc728"),
    RemoteFile("labels/female_names.txt", "gender_labels", "female_names.txt",
               "c57d2c7c535f9639660088cbc791655ef8748c26ca55fc866efd3796877ef39d"),
    RemoteFile("labels/lfw_race_dict.json", "race_labels", "lfw_race_dict.json",
               "69681176c110e4b4d55afc071cda42f60333eb15a20a6f69c99b3bd090b4d16c"),
)

#: The image folder the archive unpacks to.
LFW_IMAGES_DIR = "lfw-deepfunneled"
#: Published MD5 of lfw-deepfunneled.tgz (LFW site; torchvision's LFW dataset uses the same).
LFW_DEEPFUNNELED_TGZ_MD5 = "68331da3eb755a505a502b5aacb3c201"
LFW_ARCHIVE = RemoteFile("lfw-deepfunneled.tgz", "lfw", "lfw-deepfunneled.tgz", None,
                         LFW_DEEPFUNNELED_TGZ_MD5)
#: :func:`tree_digest` of the unpacked lfw-deepfunneled/ (13,233 .jpg files).
LFW_DEEPFUNNELED_TREE_DIGEST = "8c04ee61355d6a6734594b8fbc9a471b4699aa684db3c6c2bc535d5d7f9f0958"
LFW_DEEPFUNNELED_IMAGE_COUNT = 13233

_CHUNK = 1 << 20
_USER_AGENT = "evalkit-dataset-download/0.1"


# ---------------------------------------------------------------------------------------------
# hashing


def tree_digest(images_dir: str | os.PathLike) -> str:
    """SHA-256 "tree digest" of an image folder.

    The SHA-256 of the concatenation of the sorted lines ``"<relative/path>\\t<sha256>\\n"``,
    one per ``.jpg`` file under ``images_dir`` (paths relative to ``images_dir``, ``/``
    separators, e.g. ``"George_W_Bush/George_W_Bush_0010.jpg"``; sorted as Python sorts str).
    Other files (``.DS_Store``) are ignored. Equal digests mean the same set of images, byte for
    byte, at the same paths.

    Raises:
        FileNotFoundError: ``images_dir`` is not a folder.
    """
    root = Path(images_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    lines = sorted(
        f"{p.relative_to(root).as_posix()}\t{file_sha256(p)}\n" for p in root.rglob("*.jpg") if p.is_file()
    )
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# URLs and the offline instructions


def _url_for(f: RemoteFile, base_urls: str | Mapping[str, str] | None) -> str:
    """Where ``f`` is fetched from.

    ``base_urls`` may be one string (every file is then fetched from ``base + f.dest``, i.e. a
    server that mirrors the layout) or a mapping that overrides some of
    :data:`DEFAULT_BASE_URLS` (then ``base[f.source] + f.remote_name``).
    """
    if isinstance(base_urls, str):
        return base_urls.rstrip("/") + "/" + f.dest
    bases = dict(DEFAULT_BASE_URLS)
    bases.update(base_urls or {})
    return bases[f.source].rstrip("/") + "/" + f.remote_name


def offline_instructions(dest_root: str | os.PathLike, base_urls: str | Mapping[str, str] | None = None) -> str:
    """Which files to put where (and where each comes from) to use LFW without a network."""
    root = Path(dest_root)
    rows = [(f"{LFW_IMAGES_DIR}/NAME/NAME_NNNN.jpg",
             f"unpacked from {_url_for(LFW_ARCHIVE, base_urls)} (MD5 {LFW_DEEPFUNNELED_TGZ_MD5})")]
    rows += [(f.dest, f"from {_url_for(f, base_urls)} (SHA-256 {f.sha256})") for f in LFW_FILES]
    width = max(len(r[0]) for r in rows)
    body = "\n".join(f"  {dest.ljust(width)}  {src}" for dest, src in rows)
    return (
        f"To proceed without network, put these files under {root}:\n{body}\n"
        "(the layout of datasets/lfw/README.md; check a hand-made copy with "
        "`evalkit data verify lfw`)."
    )


# ---------------------------------------------------------------------------------------------
# fetching


def _fetch(url: str, dest: Path, timeout: float, sha256: str | None, md5: str | None,
           what: str, offline_help: str) -> None:
    """Download ``url`` to ``dest`` via a temporary file, verify, then rename atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        h_sha, h_md5 = hashlib.sha256(), hashlib.md5()
        with os.fdopen(fd, "wb") as out:
            req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    while True:
                        chunk = resp.read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        h_sha.update(chunk)
                        h_md5.update(chunk)
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError,
                    TimeoutError, socket.timeout) as e:
                reason = getattr(e, "reason", None) or e
                raise DownloadError(f"could not download {what} from {url}: {reason}\n{offline_help}") from e
        for algo, expected, actual in (("SHA-256", sha256, h_sha.hexdigest()), ("MD5", md5, h_md5.hexdigest())):
            if expected is not None and actual != expected:
                raise DownloadError(
                    f"checksum mismatch for {what} (from {url}): expected {algo} {expected}, got {actual}; "
                    "the download was discarded"
                )
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def _safe_members(tar: tarfile.TarFile, top: str, archive: Path) -> list[tarfile.TarInfo]:
    """Archive members, refusing anything outside ``top/`` or that is not a file or folder."""
    members = []
    for m in tar.getmembers():
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] != top:
            raise DownloadError(f"{archive}: unexpected member {m.name!r} (everything must be under {top}/)")
        if not (m.isfile() or m.isdir()):
            raise DownloadError(f"{archive}: member {m.name!r} is not a regular file or folder")
        members.append(m)
    return members


def _unpack(archive: Path, dest_root: Path, expected_digest: str | None) -> None:
    """Unpack ``archive`` (containing ``lfw-deepfunneled/``) into ``dest_root`` after verifying it,
    replacing an existing ``lfw-deepfunneled/`` (the caller decides whether that is wanted)."""
    staging = Path(tempfile.mkdtemp(dir=dest_root, prefix=f".{LFW_IMAGES_DIR}.unpack-"))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = _safe_members(tar, LFW_IMAGES_DIR, archive)
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(staging, members=members, **kwargs)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DownloadError(f"could not unpack {archive}: {e}") from e
        unpacked = staging / LFW_IMAGES_DIR
        if not unpacked.is_dir():
            raise DownloadError(f"{archive} does not contain a {LFW_IMAGES_DIR}/ folder")
        if expected_digest is not None:
            actual = tree_digest(unpacked)
            if actual != expected_digest:
                raise DownloadError(
                    f"checksum mismatch for {LFW_IMAGES_DIR}/ unpacked from {archive.name}: expected "
                    f"tree digest {expected_digest}, got {actual}; the unpacked files were discarded"
                )
        target = dest_root / LFW_IMAGES_DIR
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _selection(files: Iterable[str] | None) -> tuple[list[RemoteFile], bool]:
    """The text files and whether the images are wanted, from user-facing names."""
    if files is None:
        return list(LFW_FILES), True
    by_name = {f.dest: f for f in LFW_FILES}
    image_names = {LFW_IMAGES_DIR, LFW_IMAGES_DIR + "/", LFW_ARCHIVE.dest}
    chosen, images = [], False
    for name in files:
        if name in image_names:
            images = True
        elif name in by_name:
            chosen.append(by_name[name])
        else:
            known = sorted(by_name) + [LFW_IMAGES_DIR]
            hint = difflib.get_close_matches(name, known, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(f"unknown LFW file {name!r} (known: {', '.join(known)}){extra}")
    return chosen, images


def download_lfw(
    dest_root: str | os.PathLike,
    base_urls: str | Mapping[str, str] | None = None,
    timeout: float = 10,
    force: bool = False,
    *,
    files: Iterable[str] | None = None,
    expected_tree_digest: str | None = LFW_DEEPFUNNELED_TREE_DIGEST,
    archive_md5: str | None = LFW_DEEPFUNNELED_TGZ_MD5,
    keep_archive: bool = False,
) -> dict[str, str]:
    """Fetch LFW (deep-funneled images, protocol files, README) and its label files.

    Args:
        dest_root: the LFW root to fill (created if needed), e.g. ``$EVALKIT_DATA_DIR/lfw``.
        base_urls: None for the real sources; one URL to fetch every file from
            ``<url>/<layout path>`` (a local mirror, tests); or a mapping overriding some of
            :data:`DEFAULT_BASE_URLS` (keys ``lfw``, ``gender_labels``, ``race_labels``).
        timeout: seconds for the connection and each read; one attempt, no retries.
        force: download again even when a file (or the image folder) is present and verifies;
            replaces an image folder that does not verify.
        files: restrict to these layout names (``"pairs.txt"``, ``"labels/male_names.txt"``,
            ``"lfw-deepfunneled"`` for the images ...); default everything.
        expected_tree_digest: :func:`tree_digest` the unpacked ``lfw-deepfunneled/`` must have;
            None skips that check (only for tests and private mirrors).
        archive_md5: MD5 the downloaded ``lfw-deepfunneled.tgz`` must have; None skips it.
        keep_archive: keep ``lfw-deepfunneled.tgz`` after unpacking (default: delete it).

    Returns:
        layout name -> ``"present"`` (already there and verified, skipped) or ``"downloaded"``.

    Raises:
        DownloadError: a source unreachable (fails at the first failed attempt, naming the URL
            and the offline layout), a checksum mismatch (naming the file, expected and actual
            hash; the temporary file is deleted), a bad archive, or an existing
            ``lfw-deepfunneled/`` that does not verify (without ``force``).
    """
    wanted, images = _selection(files)
    root = Path(dest_root)
    root.mkdir(parents=True, exist_ok=True)
    help_text = offline_instructions(root, base_urls)
    status: dict[str, str] = {}

    for f in wanted:
        dest = root / f.dest
        if not force and dest.is_file() and file_sha256(dest) == f.sha256:
            status[f.dest] = "present"
            continue
        url = _url_for(f, base_urls)
        log.info("downloading %s -> %s", url, dest)
        _fetch(url, dest, timeout, f.sha256, None, f.dest, help_text)
        status[f.dest] = "downloaded"

    if images:
        target = root / LFW_IMAGES_DIR
        if target.is_dir() and not force:
            if expected_tree_digest is None:
                status[LFW_IMAGES_DIR] = "present"
            else:
                actual = tree_digest(target)
                if actual != expected_tree_digest:
                    raise DownloadError(
                        f"{target} exists but does not verify: expected tree digest "
                        f"{expected_tree_digest}, got {actual}. Remove it, or pass force=True "
                        "(`--force`) to replace it."
                    )
                status[LFW_IMAGES_DIR] = "present"
        else:
            archive = root / LFW_ARCHIVE.dest
            have_archive = archive.is_file() and archive_md5 is not None and file_digest(archive, "md5") == archive_md5
            if not have_archive or force:
                url = _url_for(LFW_ARCHIVE, base_urls)
                log.info("downloading %s -> %s", url, archive)
                _fetch(url, archive, timeout, None, archive_md5, LFW_ARCHIVE.dest, help_text)
            _unpack(archive, root, expected_tree_digest)
            if not keep_archive:
                archive.unlink()
            status[LFW_IMAGES_DIR] = "downloaded"
    return status


def verify_lfw(
    root: str | os.PathLike, expected_tree_digest: str | None = LFW_DEEPFUNNELED_TREE_DIGEST
) -> dict[str, str]:
    """Check a local LFW copy against the fixed checksums, without any network.

    Returns:
        layout name -> ``"ok"``, ``"missing"`` or ``"mismatch: expected <hash>, got <hash>"``
        for every text file and for ``lfw-deepfunneled`` (tree digest; ``"ok (unchecked)"``
        when ``expected_tree_digest`` is None).
    """
    root = Path(root)
    out: dict[str, str] = {}
    for f in LFW_FILES:
        p = root / f.dest
        if not p.is_file():
            out[f.dest] = "missing"
        else:
            actual = file_sha256(p)
            out[f.dest] = "ok" if actual == f.sha256 else f"mismatch: expected {f.sha256}, got {actual}"
    img = root / LFW_IMAGES_DIR
    if not img.is_dir():
        out[LFW_IMAGES_DIR] = "missing"
    elif expected_tree_digest is None:
        out[LFW_IMAGES_DIR] = "ok (unchecked)"
    else:
        actual = tree_digest(img)
        out[LFW_IMAGES_DIR] = (
            "ok" if actual == expected_tree_digest else f"mismatch: expected {expected_tree_digest}, got {actual}"
        )
    return out
