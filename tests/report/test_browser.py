"""The HTML report in a real browser: Debian's chromium, headless, driven through the DevTools
protocol over a pipe (--remote-debugging-pipe: no websocket library, no open port).

Asserts: the page loads without console errors, exceptions or failed loads; it requests nothing
but its own file; every number tagged with data-key equals metrics.json's value (and its shown
text is that value formatted); every section and figure is there. A full-page screenshot is saved
to the pytest tmp dir and copied to $EVALKIT_ARTIFACTS (default results/artifacts/, git-ignored)
as report_screenshot.png.

Without chromium the test skips on a developer's machine and fails in CI (CI=true); `.ci/run`
installs it.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from evalkit.report import html as report_html
from tests.conftest import REPO, _missing
from tests.report.test_html import resolve

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


class DevTools:
    """A minimal Chrome DevTools Protocol client over --remote-debugging-pipe (fd 3 in, fd 4 out;
    JSON messages separated by NUL)."""

    def __init__(self, binary: str, user_data_dir: Path, extra=()):
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def wire():  # in the child: fd 3 reads our commands, fd 4 writes replies
            a, b = os.dup(to_r), os.dup(from_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe", *extra, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            close_fds=False, preexec_fn=wire)
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from chromium")
            ready, _, _ = select.select([self._from_r], [], [], left)
            if ready:
                chunk = os.read(self._from_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe: " + self._stderr())
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def _stderr(self) -> str:
        try:
            self.proc.kill()
            return self.proc.stderr.read().decode(errors="replace")[-2000:]
        except Exception:  # noqa: BLE001 - diagnostics only
            return ""

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            r = self._read_message(deadline)
            if r.get("id") == self._id:
                if "error" in r:
                    raise RuntimeError(f"{method}: {r['error']}")
                return r.get("result", {})
            self.events.append(r)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        for e in self.events:
            if e.get("method") == method:
                return e
        deadline = time.monotonic() + timeout
        while True:
            e = self._read_message(deadline)
            self.events.append(e)
            if e.get("method") == method:
                return e

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_w, self._from_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc.stderr.close()


def open_page(path: Path, user_data_dir: Path, width: int = 1280) -> dict:
    """Load ``path`` in headless chromium; return console/exception/network records, the tagged
    numbers of the rendered DOM, page facts and a full-page PNG screenshot."""
    if not Path(CHROMIUM).is_file():
        _missing(f"{CHROMIUM} not found (apt-get install chromium; .ci/run installs it)")
    dt = DevTools(CHROMIUM, user_data_dir)
    try:
        target = dt.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = dt.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            dt.call(f"{domain}.enable", session=s)
        dt.call("Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=s)
        dt.events.clear()
        dt.call("Page.navigate", {"url": path.resolve().as_uri()}, session=s)
        dt.wait_event("Page.loadEventFired", timeout=60)
        js = """JSON.stringify({
            nums: Array.from(document.querySelectorAll('[data-key]')).map(
                e => [e.dataset.key, e.dataset.value, e.textContent.trim()]),
            sections: Array.from(document.querySelectorAll('section[id]')).map(e => e.id),
            figures: Array.from(document.querySelectorAll('figure svg')).map(
                e => [e.getAttribute('aria-label'), e.getBoundingClientRect().width, e.getBoundingClientRect().height]),
            captions: Array.from(document.querySelectorAll('table')).filter(t => !t.querySelector('caption')).length,
            title: document.title,
            text: document.body.innerText})"""
        dom = json.loads(dt.call("Runtime.evaluate", {"expression": js, "returnByValue": True}, session=s)["result"]["value"])
        size = dt.call("Page.getLayoutMetrics", session=s)["cssContentSize"]
        height = int(min(size["height"], 30000))
        dt.call("Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=s)
        shot = dt.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=s, timeout=60)
        events = list(dt.events)
    finally:
        dt.close()
    console = [e["params"] for e in events if e.get("method") == "Runtime.consoleAPICalled"
               and e["params"].get("type") in ("error", "assert", "warning")]
    exceptions = [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"]
    log_errors = [e["params"]["entry"] for e in events if e.get("method") == "Log.entryAdded"
                  and e["params"]["entry"].get("level") in ("error", "warning")]
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    failed = [e["params"] for e in events if e.get("method") == "Network.loadingFailed"]
    return {"console": console, "exceptions": exceptions, "log_errors": log_errors, "requests": requests,
            "failed": failed, "dom": dom, "png": base64.b64decode(shot["data"]), "height": height}


def save_artifact(png: bytes, tmp_path: Path) -> tuple[Path, Path]:
    local = tmp_path / "artifacts" / "report_screenshot.png"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(png)
    dest_dir = Path(os.environ.get("EVALKIT_ARTIFACTS") or REPO / "results" / "artifacts")
    dest_dir.mkdir(parents=True, exist_ok=True)
    stable = dest_dir / "report_screenshot.png"
    shutil.copyfile(local, stable)
    return local, stable


@pytest.mark.slow
def test_report_in_chromium(lfw_run, tmp_path):
    report = report_html.write_report(lfw_run)
    metrics = json.loads((lfw_run / "metrics.json").read_text())
    page = open_page(report, tmp_path / "chromium-profile")

    # loads cleanly, offline
    assert page["console"] == [] and page["exceptions"] == [], (page["console"], page["exceptions"])
    assert page["log_errors"] == [], page["log_errors"]
    assert page["failed"] == [], page["failed"]
    requests = [u for u in page["requests"] if not u.startswith("data:")]   # data: = embedded in the page
    assert requests == [report.resolve().as_uri()], requests

    # every tagged number equals metrics.json's, and its text shows that value
    dom = page["dom"]
    nums = dom["nums"]
    assert len(nums) > 50
    keys = {k for k, _, _ in nums}
    for attr, groups in metrics["groups"].items():
        for g in groups:
            for rate in ("fnmr", "fmr"):
                for field in ("rate", "errors", "n", "subjects"):
                    assert f"groups.{attr}.{g}.{rate}.{field}" in keys
    for k in ("overall.fnmr.rate", "overall.fmr.rate", "threshold.value", "eer", "failures.images.fte.rate"):
        assert k in keys
    for key, value, text in nums:
        expected = resolve(metrics, key)
        assert json.loads(value) == expected, key
        if key.split(".")[-1] in ("rate", "eer", "mean", "upper") and isinstance(expected, float):
            assert text == report_html.pct(expected), (key, text)
        if expected is None and key.split(".")[-1] == "rate":
            assert text == "n/a (not estimable)", key
        if isinstance(expected, int) and not isinstance(expected, bool):
            assert text == str(expected), (key, text)

    # every item of the report is on the rendered page
    for section in ("headline", "disparity", "tests", "operating", "intersections", "figures", "fte", "provenance",
                    "caveats"):
        assert section in dom["sections"]
    labels = [f[0] for f in dom["figures"]]
    for attr in metrics["groups"]:
        for what in ("DET curves by", "Score distributions by", "Cross-group FMR heatmap by"):
            assert f"{what} {attr}" in labels, (what, attr, labels)
    assert "Failure to enrol by group" in labels
    assert all(w > 300 and h > 150 for _, w, h in dom["figures"]), dom["figures"]
    assert dom["captions"] == 0       # every table has a caption
    text = dom["text"]
    for needle in ("Provenance", "Caveats", metrics["backend"]["fingerprint"]["model"], "Label coverage",
                   metrics["failure_policy"]):
        assert needle in text

    # the screenshot: a real, tall PNG, saved as an artifact
    png = page["png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    local, stable = save_artifact(png, tmp_path)
    assert local.stat().st_size == len(png) and stable.read_bytes() == png
    import struct

    w, h = struct.unpack(">II", png[16:24])
    assert w == 1280 and h == page["height"] > 3000
