"""Amazon Rekognition as a scoring backend: the one file adding a cloud face API takes.

1:1 — ``CompareFaces`` once per comparison with ``SimilarityThreshold=0``, so every score comes
back (the service's default, 80, would hide every score below it). The pair's score is the best
``Similarity`` over the target's faces (``FaceMatches``; best first); what the call returned is
kept in the response cache: ``SourceImageFace``, ``FaceMatches``, ``UnmatchedFaces``.

1:N — a collection: ``CreateCollection``, ``IndexFaces`` for every gallery image (``MaxFaces=1``,
the largest face, with its sample id as ``ExternalImageId``; ``UnindexedFaces`` recorded per
image), ``SearchFacesByImage`` per probe with ``MaxFaces`` = the candidate-list length (times
the images enrolled per subject) and ``FaceMatchThreshold=0`` so the full list comes back, and
``DeleteCollection`` at the end unless ``keep_collection``. The collection's name is derived from
a digest of the gallery (its images' SHA-256s and ids), so an interrupted run finds it again.

``QualityFilter`` (NONE | AUTO | LOW | MEDIUM | HIGH) is sent on every call; default NONE (the
service's default for CompareFaces and SearchFacesByImage; IndexFaces' own default is AUTO,
which would silently leave low-quality gallery faces out, so evalkit sends NONE unless told).

Scores are similarities in 0-100 (higher = more alike). Documented operating points, audited by
the search protocol: 80, the service's default ``SimilarityThreshold`` / ``FaceMatchThreshold``;
99, the threshold AWS recommends for public-safety and law-enforcement use.

Cost and safety: every call's answer is cached on disk (``evalkit.response_cache``; key: image
SHA-256s, region, face model version, operation, parameters), so a rerun makes no call. Before the
first call the run logs how many billable calls it will make and what they cost at
``price_per_call``, and refuses above ``max_calls`` or ``max_cost`` unless
``allow_over_limit``. Throttling (ThrottlingException, ProvisionedThroughputExceededException)
and transient faults are retried with capped exponential backoff and jitter; a permanent error on
one image (no face, invalid image) is a recorded failure of that image. Credentials come from the
standard AWS chain only (environment, shared config/credentials files, SSO, instance roles); they
are never a config key and never written anywhere.

Failure attribution: CompareFaces answers InvalidParameterException when the source OR the target
has no face (it does not say which). evalkit attributes it to the image that has never shown a
face in any successful call of the run (the other image did); when neither is known, both images
are marked ``no_face`` unless a later call shows a face in one of them. SearchFacesByImage's
InvalidParameterException is the probe's ``no_face``; an image IndexFaces indexes no face of is
``no_face`` (or ``quality_filtered`` when its UnindexedFaces give quality reasons).
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import hashlib
import logging
import os
import random
import re
import threading
import time
from typing import Sequence

import numpy as np

from dataclasses import dataclass
from typing import Optional

from ..config import BackendConfig
from ..hashing import file_sha256
from ..response_cache import ResponseCache, canonical, request_key
from .base import MISSING_FILE, MULTIPLE_FACES, NO_FACE, UNREADABLE, check_choice
from .scoring_base import (QUALITY_FILTERED, SERVICE_ERROR, SIMILARITY, CallPlan, Candidates, CredentialsMissing,
                           PairScores, ScoringBackend, check_limits)

log = logging.getLogger("evalkit")

SERVICE = "rekognition"
QUALITY_FILTERS = ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH")
MULTIPLE_FACE_POLICIES = ("best", "fail")
MAX_IMAGE_BYTES = 5 * 1024 * 1024           # Image.Bytes limit of the service model (ImageBlob max)
MAX_SEARCH_FACES = 4096                     # SearchFacesByImage MaxFaces max
TRANSIENT = {"ThrottlingException", "ProvisionedThroughputExceededException", "InternalServerError",
             "ServiceUnavailableException", "LimitExceededException", "RequestTimeout", "RequestTimeoutException"}
PER_IMAGE = {"InvalidParameterException": NO_FACE, "InvalidImageFormatException": UNREADABLE,
             "ImageTooLargeException": UNREADABLE}
QUALITY_REASONS = {"LOW_BRIGHTNESS", "LOW_SHARPNESS", "LOW_CONFIDENCE", "SMALL_BOUNDING_BOX", "LOW_FACE_QUALITY",
                   "EXTREME_POSE"}
BILLED = ("CompareFaces", "IndexFaces", "SearchFacesByImage")

# Price: Amazon Rekognition Image, Group 1 APIs (CompareFaces, IndexFaces, SearchFacesByImage,
# SearchFaces), first 1 million images a month, US East (N. Virginia): USD 0.001 per image
# (aws.amazon.com/rekognition/pricing, December 2026). Tiers fall with volume and prices differ by
# region: set backend.price_per_call for yours. Face metadata storage (per face per month) is not
# counted: evalkit deletes its collection at the end of a run.
DEFAULT_PRICE_PER_CALL = 0.001

_EXT_OK = re.compile(r"[A-Za-z0-9_.\-]")


def external_image_id(sample_id: str) -> str:
    """A sample id as a valid ExternalImageId (pattern ``[a-zA-Z0-9_.\\-:]+``, at most 255):
    allowed characters kept, every other UTF-8 byte written ``:hh`` (reversible)."""
    out = "".join(ch if _EXT_OK.fullmatch(ch) else "".join(f":{b:02x}" for b in ch.encode()) for ch in sample_id)
    if not out or len(out) > 255:
        out = "sha256:" + hashlib.sha256(sample_id.encode()).hexdigest()
    return out


@dataclass
class RekognitionBackendConfig(BackendConfig):
    """Amazon Rekognition, a scoring backend (evalkit/backends/rekognition.py, conf/backend/rekognition.yaml).
    Credentials come from the standard AWS chain only: there is deliberately no key for them."""
    name: str = "rekognition"
    family: str = "rekognition"
    distance: str = "none"                   # scores are the service's similarities (0-100, higher = more alike)
    region: Optional[str] = None             # None: AWS_REGION / AWS_DEFAULT_REGION / ~/.aws/config
    endpoint_url: Optional[str] = None       # None: the AWS endpoint (tests: the local fake)
    quality_filter: str = "NONE"             # NONE | AUTO | LOW | MEDIUM | HIGH, sent on every call
    face_match_threshold: float = 0.0        # SearchFacesByImage: 0 returns the whole candidate list
    model_version: str = "7.0"               # the face model version expected (checked against the service's answers)
    multiple_faces: str = "best"             # best (the best-matching face in a CompareFaces target) | fail
    price_per_call: float = 0.001            # USD per billable image call (Group 1, first 1M a month, us-east-1)
    currency: str = "USD"
    max_calls: Optional[int] = 1000          # refuse a run needing more billable calls (after the cache)
    max_cost: Optional[float] = None         # ... or costing more than this
    allow_over_limit: bool = False           # accept a run above max_calls / max_cost
    collection_id: Optional[str] = None      # None: evalkit-<gallery digest>
    keep_collection: bool = False            # keep the 1:N collection after the run (billed per face and month)
    max_retries: int = 8                     # per call, on throttling and transient faults
    backoff_base: float = 0.5                # seconds; capped exponential backoff with full jitter
    backoff_max: float = 20.0
    concurrency: int = 4                     # calls in flight
    cache_dir: Optional[str] = None          # response cache; None: <evalkit home>/responses
    timeout_s: float = 60.0


class RekognitionBackend(ScoringBackend):
    name = "rekognition"
    config_schema = RekognitionBackendConfig
    score_direction = SIMILARITY
    score_range = (0.0, 100.0)
    score_unit = "%"

    def __init__(self, region: str | None = None, endpoint_url: str | None = None, quality_filter: str = "NONE",
                 face_match_threshold: float = 0.0, model_version: str = "7.0", multiple_faces: str = "best",
                 price_per_call: float = DEFAULT_PRICE_PER_CALL, currency: str = "USD", max_calls: int | None = 1000,
                 max_cost: float | None = None, allow_over_limit: bool = False, collection_id: str | None = None,
                 keep_collection: bool = False, max_retries: int = 8, backoff_base: float = 0.5,
                 backoff_max: float = 20.0, concurrency: int = 4, cache_dir: str | None = None,
                 timeout_s: float = 60.0, **unused):
        unused.pop("distance", None)
        if unused:
            raise TypeError(f"rekognition backend: unknown options {sorted(unused)}")
        check_choice("rekognition", "quality_filter", quality_filter, QUALITY_FILTERS)
        check_choice("rekognition", "multiple_faces", multiple_faces, MULTIPLE_FACE_POLICIES)
        if not 0 <= float(face_match_threshold) <= 100:
            raise ValueError("rekognition backend: face_match_threshold must be in [0, 100]")
        if int(concurrency) < 1 or int(max_retries) < 0:
            raise ValueError("rekognition backend: concurrency must be >= 1 and max_retries >= 0")
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self.endpoint_url = endpoint_url
        self.quality_filter = quality_filter
        self.face_match_threshold = float(face_match_threshold)
        self.model_version = str(model_version)
        self.multiple_faces = multiple_faces
        self.price_per_call = float(price_per_call)
        self.currency = currency
        self.max_calls = max_calls
        self.max_cost = max_cost
        self.allow_over_limit = bool(allow_over_limit)
        self.collection_id = collection_id
        self.keep_collection = bool(keep_collection)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.concurrency = int(concurrency)
        self.timeout_s = float(timeout_s)
        from ..backends.weights import evalkit_home

        self.cache = ResponseCache(cache_dir or (evalkit_home() / "responses"), SERVICE)
        self._client = None
        self._sha: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self.stats = {"calls": {}, "cached": {}, "retries": 0, "throttled": 0, "errors": {}}

    # -- readiness -----------------------------------------------------------------------------
    @classmethod
    def default_audit_thresholds(cls) -> list[dict]:
        return [{"threshold": 80.0, "source": "Amazon Rekognition's default similarity threshold (CompareFaces "
                                               "SimilarityThreshold and SearchFacesByImage FaceMatchThreshold default to 80)"},
                {"threshold": 99.0, "source": "99%, the similarity threshold AWS recommends for public-safety and "
                                              "law-enforcement uses of Rekognition face search"}]

    def check_ready(self) -> None:
        try:
            import boto3  # noqa: F401
        except ImportError as exc:
            raise ImportError("the rekognition backend needs boto3: pip install 'evalkit[rekognition]'") from exc
        if not self.region:
            raise CredentialsMissing("the rekognition backend needs an AWS region: set backend.region=us-east-1 (or "
                                     "AWS_REGION / AWS_DEFAULT_REGION, or a region in ~/.aws/config)")
        if self._session().get_credentials() is None:
            raise CredentialsMissing(
                "no AWS credentials found in the standard chain, so nothing was called. Set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), or AWS_PROFILE for a profile "
                "in ~/.aws/credentials or ~/.aws/config (e.g. after `aws configure` or `aws sso login`). evalkit never "
                "takes credentials from its config.")

    def _session(self):
        import boto3

        # botocore's DEBUG log prints request headers, whose SigV4 Authorization names the access
        # key id: never let it reach evalkit's logs, whatever the run's log level
        for name in ("botocore", "boto3", "urllib3", "s3transfer"):
            lg = logging.getLogger(name)
            if lg.getEffectiveLevel() < logging.INFO:
                lg.setLevel(logging.INFO)

        s = boto3.session.Session(region_name=self.region)
        if not self.region and s.region_name:
            self.region = s.region_name
        return s

    def client(self):
        if self._client is None:
            from botocore.config import Config

            cfg = Config(retries={"total_max_attempts": 1}, max_pool_connections=max(10, self.concurrency),
                         connect_timeout=self.timeout_s, read_timeout=self.timeout_s)
            self._client = self._session().client("rekognition", endpoint_url=self.endpoint_url, config=cfg)
        return self._client

    def fingerprint(self) -> dict:
        return {"backend": "rekognition", "service": "Amazon Rekognition", "region": self.region,
                "model": f"Amazon Rekognition face model {self.model_version}", "detector": "the service's own",
                "endpoint": "custom (backend.endpoint_url)" if self.endpoint_url else "AWS",
                "model_version": self.model_version, "quality_filter": self.quality_filter,
                "compare": {"operation": "CompareFaces", "SimilarityThreshold": 0.0,
                            "score": "best Similarity over the target's faces", "multiple_faces": self.multiple_faces},
                "search": {"operations": ["CreateCollection", "IndexFaces", "SearchFacesByImage", "DeleteCollection"],
                           "IndexFaces.MaxFaces": 1, "FaceMatchThreshold": self.face_match_threshold},
                "score_direction": SIMILARITY, "score_range": [0.0, 100.0]}

    def call_stats(self) -> dict:
        return {**self.stats, "calls_total": int(sum(self.stats["calls"].values())),
                "cached_total": int(sum(self.stats["cached"].values())), "price_per_call": self.price_per_call,
                "currency": self.currency,
                "cost": round(sum(v for k, v in self.stats["calls"].items() if k in BILLED) * self.price_per_call, 6)}

    # -- one call ---------------------------------------------------------------------------
    def _image_sha(self, path: str) -> str | None:
        if path not in self._sha:
            try:
                self._sha[path] = file_sha256(path)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                self._sha[path] = None
        return self._sha[path]

    def _key(self, operation: str, paths: Sequence[str], params: dict) -> tuple[str, dict]:
        return request_key(service=SERVICE, region=self.region or "", model_version=self.model_version,
                           operation=operation, images=[self._image_sha(p) for p in paths], params=params)

    def _count(self, what: str, op: str) -> None:
        with self._lock:
            self.stats[what][op] = self.stats[what].get(op, 0) + 1

    def _call(self, operation: str, request: dict, paths: Sequence[str] = (), cache_params: dict | None = None,
              use_cache: bool = True) -> dict:
        """One API call: the cached answer when there is one, else the call with retries.

        Returns ``{"response": {...}}`` or ``{"error": {"code", "message"}}`` (a permanent error
        tied to the images). Raises on errors that are not about one image (access denied, a
        missing collection, retries exhausted are returned as a transient ``service_error``)."""
        key = req = None
        if cache_params is not None:
            key, req = self._key(operation, paths, cache_params)
            if use_cache:
                hit = self.cache.get(key)
                if hit is not None:
                    self._count("cached", operation)
                    return hit
        from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError

        method = getattr(self.client(), _snake(operation))
        kwargs = dict(request)
        for field, p in zip(("SourceImage", "TargetImage") if operation == "CompareFaces" else ("Image",), paths):
            with open(p, "rb") as fh:
                kwargs[field] = {"Bytes": fh.read()}
        attempt = 0
        while True:
            self._count("calls", operation)
            try:
                resp = method(**kwargs)
                resp.pop("ResponseMetadata", None)
                out = {"response": resp}
                break
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                msg = e.response.get("Error", {}).get("Message", "")
                if code in TRANSIENT:
                    if code in ("ThrottlingException", "ProvisionedThroughputExceededException"):
                        with self._lock:
                            self.stats["throttled"] += 1
                    if attempt < self.max_retries:
                        self._backoff(attempt)
                        attempt += 1
                        continue
                    self._count("errors", code)
                    return {"error": {"code": code, "message": msg, "transient": True}}
                if code in PER_IMAGE:
                    self._count("errors", code)
                    out = {"error": {"code": code, "message": msg}}
                    break
                raise RuntimeError(f"Amazon Rekognition {operation} failed: {code}: {msg}") from None
            except (BotoConnectionError, HTTPClientError) as e:
                if attempt < self.max_retries:
                    self._backoff(attempt)
                    attempt += 1
                    continue
                self._count("errors", type(e).__name__)
                return {"error": {"code": type(e).__name__, "message": str(e), "transient": True}}
        if key is not None:
            self.cache.put(key, req, out)
        return out

    def _backoff(self, attempt: int) -> None:
        with self._lock:
            self.stats["retries"] += 1
        # capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter")
        time.sleep(random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** attempt)))

    # -- 1:1 -----------------------------------------------------------------------------------
    def _compare_params(self) -> dict:
        return {"SimilarityThreshold": 0.0, "QualityFilter": self.quality_filter}

    def _local_failure(self, path: str):
        if self._image_sha(path) is None:
            return MISSING_FILE, f"no such file: {path}"
        if os.path.getsize(path) > MAX_IMAGE_BYTES:
            return UNREADABLE, f"{os.path.getsize(path)} bytes: over the service's 5 MB limit for image bytes"
        return None

    def plan_compare(self, pairs: Sequence[tuple]) -> CallPlan:
        pairs = [(_path(a), _path(b)) for a, b in pairs]
        todo = cached = 0
        seen = set()
        for a, b in pairs:
            if self._local_failure(a) or self._local_failure(b):
                continue
            key, _ = self._key("CompareFaces", (a, b), self._compare_params())
            if key in seen:
                continue
            seen.add(key)
            if key in self.cache:
                cached += 1
            else:
                todo += 1
        return CallPlan(calls={"CompareFaces": todo}, cached=cached, price_per_call=self.price_per_call,
                        currency=self.currency)

    def _guard(self, plan: CallPlan) -> None:
        log.warning("rekognition (%s): %s", self.region, plan.describe())
        check_limits(plan, self.max_calls, self.max_cost, self.allow_over_limit)

    def compare(self, pairs: Sequence[tuple]) -> PairScores:
        """pairs: (a, b) per comparison, each a path or an ``evalkit.black_box.Ref`` (id, path);
        image failures are keyed by the ref's id (the path for plain paths)."""
        ident = {_path(r): _id(r) for p in pairs for r in p}
        pairs = [(_path(a), _path(b)) for a, b in pairs]
        plan = self.plan_compare(pairs)
        self._guard(plan)
        n = len(pairs)
        scores = np.full(n, np.nan)
        pair_failure: list = [None] * n
        pair_detail: list = [""] * n
        records: list = [None] * n
        image_failure: dict = {}
        image_detail: dict = {}
        todo = []
        for i, (a, b) in enumerate(pairs):
            local = [(p, self._local_failure(p)) for p in (a, b)]
            bad = [(p, f) for p, f in local if f]
            if bad:
                for p, (reason, detail) in bad:
                    image_failure[p], image_detail[p] = reason, detail
                pair_failure[i], pair_detail[i] = bad[0][1]
                continue
            todo.append(i)
        if todo:
            self.check_ready()

        def one(i):
            a, b = pairs[i]
            return self._call("CompareFaces", self._compare_params(), (a, b), cache_params=self._compare_params())

        with cf.ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            results = list(pool.map(one, todo))
        face_seen: set = set()
        no_face_pairs = []
        for i, res in zip(todo, results):
            a, b = pairs[i]
            if "response" in res:
                r = res["response"]
                matches = r.get("FaceMatches") or []
                unmatched = r.get("UnmatchedFaces") or []
                records[i] = {k: r.get(k) for k in ("SourceImageFace", "FaceMatches", "UnmatchedFaces")}
                face_seen.update((a, b))
                n_faces = len(matches) + len(unmatched)
                if not matches:
                    pair_failure[i], pair_detail[i] = SERVICE_ERROR, "no FaceMatches returned at SimilarityThreshold 0"
                    continue
                scores[i] = max(float(m["Similarity"]) for m in matches)
                if n_faces > 1:
                    pair_detail[i] = f"{n_faces} faces in target; the best match is scored"
                    if self.multiple_faces == "fail":
                        pair_failure[i] = MULTIPLE_FACES
                        scores[i] = np.nan
                        image_failure[b], image_detail[b] = MULTIPLE_FACES, f"{n_faces} faces (CompareFaces target)"
            else:
                err = res["error"]
                detail = f"{err['code']}: {err['message']}"
                if err.get("transient"):
                    pair_failure[i], pair_detail[i] = SERVICE_ERROR, detail + " (retries exhausted; retried next run)"
                else:
                    pair_failure[i], pair_detail[i] = PER_IMAGE[err["code"]], detail
                    no_face_pairs.append(i)
        for i in no_face_pairs:   # which image has no face? the one never seen with one
            a, b = pairs[i]
            reason = pair_failure[i]
            if reason == NO_FACE and self.quality_filter != "NONE":
                pair_detail[i] += f" (no face, or every face filtered by QualityFilter={self.quality_filter})"
            culprits = [p for p in (a, b) if p not in face_seen] or [a, b]
            for p in culprits:
                image_failure.setdefault(p, reason)
                image_detail.setdefault(p, f"CompareFaces: {pair_detail[i]}" + (
                    "" if len(culprits) == 1 else " (the service does not say whether source or target)"))
        return PairScores(scores=scores, pair_failure=pair_failure, pair_detail=pair_detail,
                          image_failure={ident[p]: f for p, f in image_failure.items()},
                          image_detail={ident[p]: d for p, d in image_detail.items()}, records=records)

    # -- 1:N -------------------------------------------------------------------------------------
    def _gallery_digest(self, gallery: Sequence[tuple[str, str]]) -> str:
        items = [[external_image_id(ext), self._image_sha(p)] for p, ext in gallery]
        return hashlib.sha256(canonical({"gallery": items, "quality_filter": self.quality_filter}).encode()).hexdigest()

    def _collection_name(self, digest: str) -> str:
        return self.collection_id or f"evalkit-{digest[:24]}"

    def _index_params(self, digest: str, ext: str) -> dict:
        return {"gallery": digest, "ExternalImageId": ext, "MaxFaces": 1, "QualityFilter": self.quality_filter}

    def _search_params(self, digest: str, max_faces: int) -> dict:
        return {"gallery": digest, "MaxFaces": int(max_faces), "FaceMatchThreshold": self.face_match_threshold,
                "QualityFilter": self.quality_filter}

    def plan_search(self, gallery, probes, candidates: int) -> CallPlan:
        gallery = [(r.path, r.id) if hasattr(r, "path") else (str(r[0]), str(r[1])) for r in gallery]
        probes = [_path(p) for p in probes]
        digest = self._gallery_digest(gallery)
        sp = self._search_params(digest, min(candidates, MAX_SEARCH_FACES))
        todo_s = cached = 0
        for p in probes:
            if self._local_failure(p):
                continue
            if self._key("SearchFacesByImage", (p,), sp)[0] in self.cache:
                cached += 1
            else:
                todo_s += 1
        idx_cached = sum(1 for p, ext in gallery if not self._local_failure(p)
                         and self._key("IndexFaces", (p,), self._index_params(digest, external_image_id(ext)))[0] in self.cache)
        n_gallery = sum(1 for p, _ in gallery if not self._local_failure(p))
        need = todo_s > 0 or idx_cached < n_gallery
        todo_i = n_gallery if need else 0
        return CallPlan(calls={"IndexFaces": todo_i, "SearchFacesByImage": todo_s},
                        cached=cached + (idx_cached if not need else 0), price_per_call=self.price_per_call,
                        currency=self.currency, free_calls={"CreateCollection": int(need), "DeleteCollection":
                                                            int(need and not self.keep_collection)},
                        upper_bound=need)

    def search(self, gallery: Sequence, probes: Sequence, candidates: int) -> Candidates:
        """gallery: Refs (id, path) or (path, external id) tuples; probes: Refs or paths."""
        gallery = [(r.path, r.id) if hasattr(r, "path") else (str(r[0]), str(r[1])) for r in gallery]
        probes = [_path(p) for p in probes]
        max_faces = min(int(candidates), MAX_SEARCH_FACES)
        plan = self.plan_search(gallery, probes, max_faces)
        self._guard(plan)
        digest = self._gallery_digest(gallery)
        ext_ids = [external_image_id(e) for _, e in gallery]
        if len(set(ext_ids)) != len(ext_ids):
            raise ValueError("gallery sample ids must be unique")
        g_index = {e: i for i, e in enumerate(ext_ids)}
        G, P = len(gallery), len(probes)
        g_fail: list = [None] * G
        g_detail: list = [""] * G
        p_fail: list = [None] * P
        p_detail: list = [""] * P
        lists: list = [[] for _ in range(P)]
        for i, (p, _) in enumerate(gallery):
            lf = self._local_failure(p)
            if lf:
                g_fail[i], g_detail[i] = lf
        for j, p in enumerate(probes):
            lf = self._local_failure(p)
            if lf:
                p_fail[j], p_detail[j] = lf
        need = plan.calls["IndexFaces"] > 0 or plan.calls["SearchFacesByImage"] > 0
        cid = self._collection_name(digest)
        created = False
        if need:
            self.check_ready()
            created = self._ensure_collection(cid)
        sp = self._search_params(digest, max_faces)
        ok_g = [i for i in range(G) if g_fail[i] is None]
        ok_p = [j for j in range(P) if p_fail[j] is None]
        try:
            with cf.ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                def index(i):
                    p, _ = gallery[i]
                    req = {"CollectionId": cid, "ExternalImageId": ext_ids[i], "MaxFaces": 1,
                           "QualityFilter": self.quality_filter}
                    return self._call("IndexFaces", req, (p,), cache_params=self._index_params(digest, ext_ids[i]),
                                      use_cache=not created)
                for i, res in zip(ok_g, pool.map(index, ok_g)):
                    g_fail[i], g_detail[i] = self._indexed(res)

                def one(j):
                    req = {"CollectionId": cid, "MaxFaces": max_faces, "FaceMatchThreshold": self.face_match_threshold,
                           "QualityFilter": self.quality_filter}
                    return self._call("SearchFacesByImage", req, (probes[j],), cache_params=sp)
                for j, res in zip(ok_p, pool.map(one, ok_p)):
                    if "response" in res:
                        lists[j] = [(g_index[m["Face"]["ExternalImageId"]], float(m["Similarity"]))
                                    for m in res["response"].get("FaceMatches") or []
                                    if m.get("Face", {}).get("ExternalImageId") in g_index]
                    else:
                        err = res["error"]
                        p_fail[j] = SERVICE_ERROR if err.get("transient") else PER_IMAGE[err["code"]]
                        p_detail[j] = f"SearchFacesByImage: {err['code']}: {err['message']}"
        except BaseException:
            if need:
                log.warning("rekognition: the run stopped; collection %s is kept so a rerun resumes without "
                            "indexing again (it is deleted at the end of that run unless backend.keep_collection)", cid)
            raise
        if need and not self.keep_collection:
            self._call("DeleteCollection", {"CollectionId": cid})
            log.info("rekognition: deleted collection %s", cid)
        elif need:
            log.warning("rekognition: collection %s kept (backend.keep_collection=true); it holds face metadata "
                        "billed per face and month until deleted", cid)
        return Candidates(lists=lists, probe_failure=p_fail, probe_detail=p_detail, gallery_failure=g_fail,
                          gallery_detail=g_detail)

    def _ensure_collection(self, cid: str) -> bool:
        """Create the collection; True when created now (cached IndexFaces answers are then stale),
        False when it already exists (an interrupted run's, whose faces are still indexed)."""
        from botocore.exceptions import ClientError

        try:
            res = self._call("CreateCollection", {"CollectionId": cid})
        except RuntimeError as e:
            if "ResourceAlreadyExistsException" not in str(e):
                raise
            try:
                desc = self.client().describe_collection(CollectionId=cid)
                self._count("calls", "DescribeCollection")
            except ClientError as ce:
                raise RuntimeError(f"Amazon Rekognition DescribeCollection failed: {ce}") from None
            self._check_version(desc.get("FaceModelVersion"), cid)
            log.info("rekognition: reusing collection %s (%s faces)", cid, desc.get("FaceCount"))
            return False
        if "error" in res:
            raise RuntimeError(f"Amazon Rekognition CreateCollection failed: {res['error']}")
        try:
            self._check_version(res["response"].get("FaceModelVersion"), cid)
        except ValueError:
            self._call("DeleteCollection", {"CollectionId": cid})
            raise
        return True

    def _check_version(self, version, cid: str) -> None:
        if version is not None and str(version) != self.model_version:
            raise ValueError(f"collection {cid} uses face model version {version}, but backend.model_version is "
                             f"{self.model_version}: set backend.model_version={version} (it keys the response cache, "
                             "so answers of different models never mix)")

    def _indexed(self, res: dict):
        """(failure reason or None, detail) of one gallery image from its IndexFaces answer."""
        if "error" in res:
            err = res["error"]
            return (SERVICE_ERROR if err.get("transient") else PER_IMAGE[err["code"]],
                    f"IndexFaces: {err['code']}: {err['message']}")
        r = res["response"]
        self._check_version(r.get("FaceModelVersion"), "(IndexFaces)")
        unindexed = r.get("UnindexedFaces") or []
        reasons = sorted({x for u in unindexed for x in u.get("Reasons", [])})
        if not r.get("FaceRecords"):
            if reasons and set(reasons) & QUALITY_REASONS:
                return QUALITY_FILTERED, f"IndexFaces indexed no face; UnindexedFaces reasons {reasons}"
            return NO_FACE, "IndexFaces found no face" + (f"; UnindexedFaces reasons {reasons}" if reasons else "")
        if unindexed:
            return None, f"{len(unindexed) + 1} faces; the largest indexed (UnindexedFaces reasons {reasons})"
        return None, ""


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def _path(ref) -> str:
    return str(ref.path) if hasattr(ref, "path") else str(ref)


def _id(ref) -> str:
    return str(ref.id) if hasattr(ref, "id") else str(ref)
