"""The Amazon Rekognition backend against a local fake endpoint (tests/fakes/rekognition_server.py)
speaking the real AWS JSON 1.1 protocol with dlib scores on real LFW images. No AWS access.

What is shown: the fake's requests and responses fit botocore's service model; a 1:1 run and a 1:N
run give per-group rates equal to a recount from the fake's own answers; a rerun (with a new
threshold policy) makes zero calls; an interrupted run resumes without repeating a call; throttling
is survived; no credential string reaches the run folder or the logs; a cost cap or missing
credentials stop the run before any call.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("boto3")

from evalkit.backends.rekognition import RekognitionBackend, external_image_id  # noqa: E402
from evalkit.backends.scoring_base import CostLimitExceeded, CredentialsMissing  # noqa: E402
from evalkit.pipeline import run  # noqa: E402

from ..conftest import compose_config  # noqa: E402
from ..fakes.rekognition_server import FakeServer  # noqa: E402
from ..fakes.shapes import operation_shapes, validate  # noqa: E402

KEY_ID = "AKIAFAKEW14EVALKIT00"
SECRET = "fakeSecretW14/doNotLeak+0123456789abcdef"
SMALL_1TO1 = ["protocol.pairs_per_fold=3", "progress=false", "det_plot=false", "bootstrap.replicates=20",
              "threshold.target_fmr=0.1"]
SMALL_SEARCH = ["protocol=search", "threshold=global_fpir", "threshold.target_fpir=0.1", "protocol.max_subjects=40",
                "protocol.max_probes_per_subject=2", "protocol.candidates=5", "progress=false", "det_plot=false",
                "bootstrap.replicates=20"]


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Fake credentials in the standard chain; no shared files, profile or instance metadata."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)


@pytest.fixture(scope="module")
def fake():
    with FakeServer() as f:
        yield f


@pytest.fixture
def service(fake):
    fake.service.reset_log()
    fake.service.throttle, fake.service.faults = set(), set()
    return fake.service


def _cfg(fake, data_dir, cache, *extra):
    return compose_config(["backend=rekognition", f"backend.endpoint_url={fake.url}", "backend.region=us-east-1",
                           f"backend.cache_dir={cache}", "backend.backoff_base=0.01", "backend.backoff_max=0.05",
                           f"data_dir={data_dir}", *extra])


def _count(entry: dict, rate: str) -> tuple[int, int]:
    """(errors, n) of a group's FMR or FNMR, in metrics.json schema 2 or 3."""
    if isinstance(entry.get(rate), dict):
        return entry[rate]["errors"], entry[rate]["n"]
    return ((entry["false_matches"], entry["n_impostor"]) if rate == "fmr"
            else (entry["false_nonmatches"], entry["n_genuine"]))


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- the fake itself


def test_fake_speaks_the_service_model(aws_env, service, fake, lfw_image, blank_image, tmp_path):
    """Every response of every operation fits botocore's output shape; documented errors arrive as
    botocore's exception classes; SimilarityThreshold, MaxFaces and QualityFilter are honoured."""
    import boto3
    from botocore.config import Config

    import cv2

    cl = boto3.client("rekognition", region_name="us-east-1", endpoint_url=fake.url,
                      config=Config(retries={"total_max_attempts": 1}))
    a, b = (Path(lfw_image("Aaron_Peirsol", n)).read_bytes() for n in (1, 2))
    c = Path(lfw_image("Abdullah_Gul", 1)).read_bytes()
    blank = Path(blank_image).read_bytes()
    small = tmp_path / "small.jpg"   # a 60 x 60 copy: the face box is under HIGH's 80 px
    cv2.imwrite(str(small), cv2.resize(cv2.imread(lfw_image("Aaron_Peirsol", 1)), (125, 125)))
    r = cl.compare_faces(SourceImage={"Bytes": a}, TargetImage={"Bytes": b}, SimilarityThreshold=0)
    mated = r["FaceMatches"][0]["Similarity"]
    r = cl.compare_faces(SourceImage={"Bytes": a}, TargetImage={"Bytes": c}, SimilarityThreshold=0)
    nonmated = r["FaceMatches"][0]["Similarity"]
    assert 0 <= nonmated < 50 < mated <= 100
    r = cl.compare_faces(SourceImage={"Bytes": a}, TargetImage={"Bytes": b}, SimilarityThreshold=min(100.0, mated + 0.01))
    assert r["FaceMatches"] == [] and len(r["UnmatchedFaces"]) == 1          # SimilarityThreshold honoured
    with pytest.raises(cl.exceptions.InvalidParameterException):
        cl.compare_faces(SourceImage={"Bytes": blank}, TargetImage={"Bytes": b})
    cl.create_collection(CollectionId="shapes")
    with pytest.raises(cl.exceptions.ResourceAlreadyExistsException):
        cl.create_collection(CollectionId="shapes")
    for img, ext in ((a, "A:2f1"), (c, "C"), (blank, "blank")):
        cl.index_faces(CollectionId="shapes", Image={"Bytes": img}, ExternalImageId=ext, MaxFaces=1, QualityFilter="NONE")
    r = cl.index_faces(CollectionId="shapes", Image={"Bytes": small.read_bytes()}, ExternalImageId="small",
                       QualityFilter="HIGH")
    assert r["FaceRecords"] == [] and r["UnindexedFaces"][0]["Reasons"] == ["SMALL_BOUNDING_BOX"]
    r = cl.search_faces_by_image(CollectionId="shapes", Image={"Bytes": b}, MaxFaces=1, FaceMatchThreshold=0)
    assert [m["Face"]["ExternalImageId"] for m in r["FaceMatches"]] == ["A:2f1"]   # MaxFaces, best first
    r = cl.search_faces_by_image(CollectionId="shapes", Image={"Bytes": b}, FaceMatchThreshold=99.99)
    assert r["FaceMatches"] == []                                                 # FaceMatchThreshold honoured
    with pytest.raises(cl.exceptions.InvalidParameterException):
        cl.search_faces_by_image(CollectionId="shapes", Image={"Bytes": blank})
    assert cl.describe_collection(CollectionId="shapes")["FaceCount"] == 2        # the blank image indexed nothing
    assert "shapes" in cl.list_collections()["CollectionIds"]
    cl.delete_collection(CollectionId="shapes")
    with pytest.raises(cl.exceptions.ResourceNotFoundException):
        cl.delete_collection(CollectionId="shapes")
    ok = [c for c in service.calls if c["outcome"] == "ok"]
    assert {c["operation"] for c in ok} == {"CompareFaces", "CreateCollection", "IndexFaces", "SearchFacesByImage",
                                           "DescribeCollection", "ListCollections", "DeleteCollection"}
    for c in ok:
        assert validate(c["response"], operation_shapes(c["operation"])[1]) == [], c["operation"]
    # and the validator is not a rubber stamp
    assert validate({"FaceMatches": [{"Similarity": 101.0}]}, "CompareFacesResponse")
    assert validate({"Bogus": 1}, "CreateCollectionResponse")
    assert service.access_keys == {KEY_ID}


def test_fake_throttles_on_schedule_and_counts(aws_env, service, fake, lfw_image):
    import boto3
    from botocore.config import Config

    cl = boto3.client("rekognition", region_name="us-east-1", endpoint_url=fake.url,
                      config=Config(retries={"total_max_attempts": 1}))
    service.throttle = {1, 2}
    with pytest.raises(cl.exceptions.ThrottlingException):
        cl.list_collections()
    with pytest.raises(cl.exceptions.ProvisionedThroughputExceededException):
        cl.list_collections()
    cl.list_collections()
    assert service.counts["ListCollections"] == 3 and [c["outcome"] for c in service.calls][-1] == "ok"


def test_external_image_ids_are_valid_and_distinct():
    import re

    ids = ["Aaron_Peirsol/0001", "Aaron_Peirsol:0001", "Zoë/0001", "a b"]
    ext = [external_image_id(i) for i in ids]
    assert len(set(ext)) == len(ext) and all(re.fullmatch(r"[a-zA-Z0-9_.\-:]+", e) for e in ext)


# --------------------------------------------------------------------------- 1:1 runs


def _compare_log(service) -> dict:
    """(source sha, target sha) -> best Similarity, from the fake's own answers."""
    out = {}
    for c in service.calls:
        if c["operation"] == "CompareFaces" and c["outcome"] == "ok":
            out[tuple(c["images"])] = max(m["Similarity"] for m in c["response"]["FaceMatches"])
    return out


def _recount_1to1(run_dir: Path, answers: dict, t: float, attr: str, lfw_root: Path) -> dict:
    """group -> {fmr: (errors, n), fnmr: (errors, n)} recounted from the fake's answers at similarity
    threshold t (a match when similarity >= t; a failed comparison is a non-match)."""
    root = lfw_root / "lfw-deepfunneled"
    out: dict = {}
    with open(run_dir / "scores.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r[f"{attr}_a"] != r[f"{attr}_b"]:
                continue
            pa, pb = (root / f"{r[k]}.jpg" for k in ("sample_a", "sample_b"))
            s = answers.get((_sha(pa), _sha(pb)))
            if s is not None and r["failed"] == "0":
                assert float(r["score"]) == s          # scores.csv holds the service's own number
            match = s is not None and r["failed"] == "0" and s >= t
            g = out.setdefault(r[f"{attr}_a"], {"fmr": [0, 0], "fnmr": [0, 0]})
            if r["mated"] == "1":
                g["fnmr"][0] += not match
                g["fnmr"][1] += 1
            else:
                g["fmr"][0] += match
                g["fmr"][1] += 1
    return {g: {k: tuple(v) for k, v in e.items()} for g, e in out.items()}


def test_1to1_run_through_the_fake(aws_env, service, fake, lfw_root, tmp_path, caplog, capsys):
    """LFW View 2 (3 + 3 pairs per fold) through CompareFaces: per-group FMR and FNMR equal a
    recount from the fake's answers; throttling is survived; a rerun with a new threshold policy
    makes zero calls; no credential string appears anywhere."""
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "responses"
    service.throttle = lambda n: n % 7 == 3          # every 7th call throttled
    m = run(_cfg(fake, lfw_root.parent, cache, *SMALL_1TO1), tmp_path / "run1")
    calls_1 = service.n_calls("CompareFaces")
    throttled = sum(c["outcome"] in ("ThrottlingException", "ProvisionedThroughputExceededException")
                    for c in service.calls)
    assert throttled >= 5 and calls_1 == 60 + throttled        # one successful call per comparison
    rec = json.loads((tmp_path / "run1" / "record.json").read_text())
    assert rec["extraction"]["calls"]["throttled"] == throttled and rec["extraction"]["calls"]["retries"] == throttled
    th = m["threshold"]
    assert th["direction"] == "similarity" and 0 < th["value"] < 100 and m["backend"]["score_direction"] == "similarity"
    answers = _compare_log(service)
    for attr in ("sex", "race"):
        hand = _recount_1to1(tmp_path / "run1", answers, th["value"], attr, lfw_root)
        for g, e in m["groups"][attr].items():
            assert (_count(e, "fmr"), _count(e, "fnmr")) == (hand[g]["fmr"], hand[g]["fnmr"]), (attr, g)
    # the threshold honours the FMR target in the similarity direction
    assert th.get("achieved", th.get("achieved_fmr")) <= 0.1
    # a permanent per-image failure is recorded, not a lost run: LFW has images dlib finds no face in
    fails = list(csv.DictReader(open(tmp_path / "run1" / "failures.csv")))
    assert all(f["reason"] == "no_face" for f in fails) and m["failures"]["images"]["fte"]["errors"] == len(fails)

    # rerun with a new threshold policy (a fixed vendor threshold of 80): no call at all
    service.reset_log()
    service.throttle = set()
    m2 = run(_cfg(fake, lfw_root.parent, cache, *SMALL_1TO1, "threshold=fixed", "threshold.value=80"),
             tmp_path / "run2")
    assert service.n_calls() == 0
    assert m2["threshold"]["value"] == 80.0 and "similarity" in m2["threshold"]["label"]
    hand = _recount_1to1(tmp_path / "run2", answers, 80.0, "sex", lfw_root)
    for g, e in m2["groups"]["sex"].items():
        assert (_count(e, "fmr"), _count(e, "fnmr")) == (hand[g]["fmr"], hand[g]["fnmr"])

    # no credential string in any file of the run folders, the response cache or the logs
    text = caplog.text + "".join(capsys.readouterr())
    files = [p for d in (tmp_path / "run1", tmp_path / "run2", cache) for p in d.rglob("*") if p.is_file()]
    assert len(files) > 20
    for secret in (KEY_ID, SECRET, SECRET.split("/")[0]):
        assert secret not in text
        for p in files:
            assert secret.encode() not in p.read_bytes(), p


def test_interrupted_run_resumes_without_repeating_calls(aws_env, service, fake, lfw_root, tmp_path, monkeypatch):
    cache = tmp_path / "responses"
    made = {"n": 0}
    original = RekognitionBackend._count

    def interrupt_after_25(self, what, op):
        if what == "calls":
            made["n"] += 1
            if made["n"] > 25:
                raise KeyboardInterrupt("simulated interruption")
        return original(self, what, op)

    monkeypatch.setattr(RekognitionBackend, "_count", interrupt_after_25)
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(fake, lfw_root.parent, cache, *SMALL_1TO1, "backend.concurrency=1"), tmp_path / "run1")
    answered = ("ok", "InvalidParameterException")   # a no-face answer is final and cached too
    first = [tuple(c["images"]) for c in service.calls if c["outcome"] in answered]
    assert len(first) == 25
    monkeypatch.setattr(RekognitionBackend, "_count", original)
    run(_cfg(fake, lfw_root.parent, cache, *SMALL_1TO1), tmp_path / "run2")
    done = [tuple(c["images"]) for c in service.calls if c["outcome"] in answered]
    assert len(done) == len(set(done)) == 60          # the 25 answered calls were not repeated


def test_cost_cap_and_missing_credentials_stop_before_any_call(aws_env, service, fake, lfw_root, tmp_path, monkeypatch):
    cache = tmp_path / "responses"
    with pytest.raises(CostLimitExceeded, match=r"60 billable calls .*0\.06 USD.*max_calls=50.*No call was made"):
        run(_cfg(fake, lfw_root.parent, cache, *SMALL_1TO1, "backend.max_calls=50"), tmp_path / "run1")
    with pytest.raises(CostLimitExceeded, match=r"max_cost=0\.05"):
        run(_cfg(fake, lfw_root.parent, cache, *SMALL_1TO1, "backend.max_calls=null", "backend.max_cost=0.05"),
            tmp_path / "run2")
    with pytest.raises(CostLimitExceeded, match=r"IndexFaces .*SearchFacesByImage"):
        run(_cfg(fake, lfw_root.parent, cache, *SMALL_SEARCH, "backend.max_calls=10"), tmp_path / "run3")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CredentialsMissing, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.*AWS_PROFILE"):
        run(_cfg(fake, lfw_root.parent, cache, *SMALL_1TO1), tmp_path / "run4")
    assert service.n_calls() == 0
    assert not (tmp_path / "run4" / "metrics.json").exists()


# --------------------------------------------------------------------------- 1:N search


def test_search_run_through_the_fake(aws_env, service, fake, lfw_root, tmp_path):
    """protocol=search through a collection: FPIR and FNIR per group equal a recount from the
    fake's own SearchFacesByImage answers; audits at 80 and 99; the collection is deleted; a rerun
    makes zero calls."""
    cache = tmp_path / "responses"
    m = run(_cfg(fake, lfw_root.parent, cache, *SMALL_SEARCH), tmp_path / "run1")
    assert service.collections == {}                                 # deleted at the end
    n_index, n_search = service.n_calls("IndexFaces"), service.n_calls("SearchFacesByImage")
    pr = m["protocol"]
    assert n_index == pr["n_gallery_images"] and n_search == pr["n_mated_probes"] + pr["n_nonmated_probes"]
    for c in service.calls:
        if c["operation"] == "SearchFacesByImage":
            assert c["params"]["MaxFaces"] == 5 and c["params"]["FaceMatchThreshold"] == 0.0
    # recount: per probe (by image hash) the fake's list; mate = candidate of the probe's subject
    lists = {c["images"][0]: c["response"] for c in service.calls if c["operation"] == "SearchFacesByImage"}
    ext_subject = {}
    for c in service.calls:
        if c["operation"] == "IndexFaces" and c["outcome"] == "ok" and c["response"]["FaceRecords"]:
            ext_subject[c["params"]["ExternalImageId"]] = c["params"]["ExternalImageId"].split(":2f")[0]
    t = m["threshold"]["value"]
    assert m["threshold"]["direction"] == "similarity"
    root = lfw_root / "lfw-deepfunneled"
    rows = list(csv.DictReader(open(tmp_path / "run1" / "search.csv")))
    s = m["search"]
    for attr in ("sex",):
        hand: dict = {}
        for r in rows:
            resp = lists.get(_sha(root / f"{r['probe']}.jpg"), {})
            found = [(ext_subject.get(x["Face"]["ExternalImageId"]), x["Similarity"]) for x in resp.get("FaceMatches", [])
                     if x["Face"]["ExternalImageId"] in ext_subject]
            g = hand.setdefault(r[attr], {"fpir": [0, 0], "fnir": [0, 0]})
            if r["mated"] == "1":
                g["fnir"][0] += not any(subj == r["subject"] and sim >= t for subj, sim in found)
                g["fnir"][1] += 1
            else:
                g["fpir"][0] += any(sim >= t for _, sim in found)
                g["fpir"][1] += 1
        for g, e in m["groups"][attr].items():
            for rate in ("fpir", "fnir"):
                assert (e[rate]["errors"], e[rate]["n"]) == tuple(hand[g][rate]), (attr, g, rate)
    audits = {a["threshold"]: a for a in s["audit"]}
    assert set(audits) == {80.0, 99.0} and "law-enforcement" in audits[99.0]["source"]
    assert audits[99.0]["overall"]["fpir"]["errors"] <= audits[80.0]["overall"]["fpir"]["errors"]
    for a in (80.0, 99.0):   # the audit's false positives: non-mated probes with a candidate >= a
        fp = sum(r["mated"] == "0" and any(x["Similarity"] >= a for x in
                                           lists.get(_sha(root / f"{r['probe']}.jpg"), {}).get("FaceMatches", []))
                 for r in rows)
        assert audits[a]["overall"]["fpir"]["errors"] == fp
    service.reset_log()
    run(_cfg(fake, lfw_root.parent, cache, *SMALL_SEARCH), tmp_path / "run2")
    assert service.n_calls() == 0
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("run1", "run2"))
    assert a["groups"] == b["groups"]
