"""`evalkit weights fetch`: an explicit, recorded download of DeepFace weights (a run never downloads).

The network is simulated: file:// URLs, and urlopen patched to serve known bytes for DeepFace's
real URL; offline, the real call must fail with a message naming every URL tried."""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import zipfile

import pytest

from evalkit.backends import weights
from evalkit.cli import main as cli_main


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("compress", [None, "bz2", "zip"])
def test_fetch_unpacks_writes_and_records_the_sha256(tmp_path, compress):
    payload = b"pretend weights " * 1000
    src = tmp_path / "download.bin"
    if compress == "bz2":
        src.write_bytes(bz2.compress(payload))
    elif compress == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("model.h5", payload)
        src.write_bytes(buf.getvalue())
    else:
        src.write_bytes(payload)
    target = tmp_path / "weights" / "model.h5"
    f = weights.WeightFile("model.h5", target, "test", urls=("file:///nonexistent/first", src.as_uri()),
                           compress=compress)
    r = weights.fetch_weight_file(f)
    assert target.read_bytes() == payload
    assert r["sha256"] == hashlib.sha256(payload).hexdigest() and r["url"] == src.as_uri()   # the backup answered
    rec = json.loads((target.parent / weights.FETCH_RECORD).read_text())
    assert rec["model.h5"]["sha256"] == r["sha256"] and rec["model.h5"]["bytes"] == len(payload)
    assert not list(target.parent.glob("*.part"))


def test_fetch_failure_names_every_url(tmp_path):
    f = weights.WeightFile("x.onnx", tmp_path / "x.onnx", "test", urls=("file:///no/such/a", "file:///no/such/b"))
    with pytest.raises(weights.FetchError, match="(?s)x.onnx.*no/such/a.*no/such/b"):
        weights.fetch_weight_file(f)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_fetch_puts_deepface_files_where_a_run_looks(home, monkeypatch, capsys):
    (want,) = weights.deepface_required_files("ArcFace", "skip", "onnx")
    assert not want.present and want.urls[0].startswith("https://")
    payload = b"arcface onnx bytes"

    class Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(url, timeout=None):
        assert url == want.urls[0]                # DeepFace's own upstream address, first
        return Resp(payload)

    monkeypatch.setattr("urllib.request.urlopen", fake_urlopen)
    assert cli_main(["weights", "fetch", "ArcFace", "--engine", "onnx"]) == 0
    assert hashlib.sha256(payload).hexdigest() in capsys.readouterr().out
    (now,) = weights.deepface_required_files("ArcFace", "skip", "onnx")
    assert now.present and now.path.read_bytes() == payload


def test_cli_fetch_rejects_unknown_names_with_a_hint(home, capsys):
    assert cli_main(["weights", "fetch", "Arcface"]) == 2
    assert "Did you mean 'ArcFace'" in capsys.readouterr().err


def test_missing_weights_message_points_at_fetch(home):
    (f,) = weights.deepface_required_files("ArcFace", "skip", "onnx")
    msg = weights.missing_weights_message([f], "deepface backend (model_name=ArcFace, detector_backend=skip)")
    assert "evalkit weights fetch ArcFace skip" in msg and str(f.path) in msg and f.urls[0] in msg
