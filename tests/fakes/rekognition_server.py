"""A local fake of Amazon Rekognition's face API, for tests (no AWS account, no network).

It listens on 127.0.0.1 and speaks the service's real wire protocol, AWS JSON 1.1: a POST to
``/`` with ``X-Amz-Target: RekognitionService.<Operation>``, ``Content-Type:
application/x-amz-json-1.1``, a JSON body whose image bytes are base64 text, and a SigV4
``Authorization`` header (its presence and access-key id are checked, not the signature). Errors
come back as HTTP 400 (500 for InternalServerError) with ``{"__type": ..., "Message": ...}``, which
botocore turns into the documented exception classes. boto3 talks to it with
``endpoint_url="http://127.0.0.1:<port>"``.

Operations: CompareFaces, CreateCollection, DeleteCollection, DescribeCollection,
ListCollections, IndexFaces, SearchFacesByImage. Every request is checked against the input
shape of botocore's service model (tests/fakes/shapes.py) before it is served.

Scores come from a real model on the real image bytes: dlib's native pipeline (the same HOG
detector, 5-point alignment and ResNet descriptor as evalkit's ``backend=dlib``; every face in the
image, not only the largest), and a face pair's Euclidean distance d becomes the 0-100 similarity

    similarity = 100 / (1 + exp((d - 0.6) / 0.05))

(``evalkit.backends.scoring_base.sigmoid_similarity``): strictly decreasing in d, 50 at dlib's own
0.6 tolerance, 80 at d = 0.531, 99 at d = 0.370. Only the ordering matters to every rate, so the
fake's rates at a similarity threshold T are dlib's at the distance ``similarity_to_distance(T)``.

Documented behaviour honoured:

- CompareFaces: the largest face of the source against each of the 100 largest faces of the
  target; FaceMatches (similarity >= SimilarityThreshold, default 80, best first) and
  UnmatchedFaces; InvalidParameterException when no face is found in the source or the target.
- QualityFilter (NONE | AUTO | LOW | MEDIUM | HIGH): the fake's quality measure is the face box's
  smaller side in pixels; a face is filtered below ``QUALITY_MIN_SIDE[level]`` (AUTO = MEDIUM).
  Defaults as the service: NONE for CompareFaces and SearchFacesByImage, AUTO for IndexFaces.
- IndexFaces: faces largest first; at most MaxFaces indexed, the rest UnindexedFaces with
  EXCEEDS_MAX_FACES; quality-filtered faces UnindexedFaces with SMALL_BOUNDING_BOX; no face: empty
  FaceRecords (not an error), as the service.
- SearchFacesByImage: the largest face of the image against every face of the collection,
  FaceMatches with similarity >= FaceMatchThreshold (default 80), best first, at most MaxFaces
  (default 80); InvalidParameterException when the image has no face.
- Throttling: ``throttle`` is a set of 1-based call numbers (or a callable of the call number)
  answered with ThrottlingException or ProvisionedThroughputExceededException (alternating)
  before any work; ``faults`` likewise with InternalServerError.

``server.calls`` logs every request (operation, SHA-256 of each image, parameters, outcome, the
response), ``server.counts`` counts them per operation; ``server.access_keys`` the key ids seen.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from evalkit.backends.scoring_base import sigmoid_similarity

from .shapes import operation_shapes, validate

SIMILARITY_CENTRE = 0.6
SIMILARITY_SCALE = 0.05
QUALITY_MIN_SIDE = {"NONE": 0, "LOW": 40, "MEDIUM": 60, "AUTO": 60, "HIGH": 80}
FACE_MODEL_VERSION = "7.0"
ACCOUNT = "000000000000"
MAX_IMAGE_BYTES = 5 * 1024 * 1024

# faces per image (by SHA-256 of its bytes) shared by every server of a test session: dlib runs once
_FACES: dict[str, list] = {}
_FACES_LOCK = threading.Lock()
_MODELS = None


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _models():
    global _MODELS
    if _MODELS is None:
        from evalkit.backends.dlib_native import DlibBackend

        _MODELS = DlibBackend()._load()
    return _MODELS


def analyse(data: bytes) -> list[dict]:
    """Every face dlib finds in the image bytes, largest first: box (left, top, width, height in
    pixels), image size, 128-d descriptor (dlib's native pipeline). Raises ServiceError for bytes
    that are not an image."""
    key = hashlib.sha256(data).hexdigest()
    with _FACES_LOCK:
        if key in _FACES:
            return _FACES[key]
        import cv2
        import dlib

        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None or img.size == 0:
            raise ServiceError("InvalidImageFormatException", "Request has invalid image format")
        rgb = np.ascontiguousarray(img[:, :, ::-1])
        det, predictor, recognizer = _models()
        faces = []
        for r in det(rgb, 1):
            shape = predictor(rgb, r)
            chip = dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
            desc = np.asarray(recognizer.compute_face_descriptor(chip, 0), dtype=np.float64)
            left, top = max(r.left(), 0), max(r.top(), 0)
            faces.append({"box": (left, top, min(r.right(), rgb.shape[1] - 1) - left,
                                  min(r.bottom(), rgb.shape[0] - 1) - top),
                          "size": (rgb.shape[1], rgb.shape[0]), "desc": desc})
        faces.sort(key=lambda f: -f["box"][2] * f["box"][3])
        _FACES[key] = faces
        return faces


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(sigmoid_similarity(float(np.linalg.norm(a - b)), SIMILARITY_CENTRE, SIMILARITY_SCALE))


def _bbox(face) -> dict:
    (left, top, w, h), (W, H) = face["box"], face["size"]
    return {"Width": w / W, "Height": h / H, "Left": left / W, "Top": top / H}


def _passes(face, quality: str) -> bool:
    return min(face["box"][2], face["box"][3]) >= QUALITY_MIN_SIDE[quality]


class FakeRekognition:
    """The service's state and logic; ``serve()`` puts it behind an HTTP server."""

    def __init__(self, region: str = "us-east-1", throttle=None, faults=None):
        self.region = region
        self.throttle = throttle or set()
        self.faults = faults or set()
        self.collections: dict[str, dict] = {}
        self.calls: list[dict] = []
        self.counts: collections.Counter = collections.Counter()
        self.access_keys: set[str] = set()
        self.lock = threading.Lock()
        self._n = 0
        self._throttled = 0

    # -- bookkeeping ---------------------------------------------------------------------
    def reset_log(self) -> None:
        with self.lock:
            self.calls.clear()
            self.counts.clear()
            self._n = self._throttled = 0   # schedules count from the next call

    def n_calls(self, operation: str | None = None) -> int:
        return sum(1 for c in self.calls if operation is None or c["operation"] == operation)

    def _scheduled(self, schedule, n: int) -> bool:
        return schedule(n) if callable(schedule) else n in schedule

    # -- one request -----------------------------------------------------------------------
    def handle(self, operation: str, body: dict, auth: str) -> tuple[int, dict]:
        with self.lock:
            self._n += 1
            n = self._n
            self.counts[operation] += 1
        images = [hashlib.sha256(base64.b64decode(body[k]["Bytes"])).hexdigest()
                  for k in ("SourceImage", "TargetImage", "Image") if isinstance(body.get(k), dict) and "Bytes" in body[k]]
        params = {k: v for k, v in body.items() if k not in ("SourceImage", "TargetImage", "Image")}
        entry = {"n": n, "operation": operation, "images": images, "params": params}
        try:
            if not auth.startswith("AWS4-HMAC-SHA256 Credential="):
                raise ServiceError("MissingAuthenticationTokenException", "Missing Authentication Token")
            self.access_keys.add(auth.split("Credential=", 1)[1].split("/", 1)[0])
            if self._scheduled(self.throttle, n):
                self._throttled += 1
                code = "ThrottlingException" if self._throttled % 2 else "ProvisionedThroughputExceededException"
                raise ServiceError(code, "Rate exceeded" if code == "ThrottlingException" else
                                   "Provisioned rate exceeded")
            if self._scheduled(self.faults, n):
                raise ServiceError("InternalServerError", "Internal server error", 500)
            shape_in, _ = operation_shapes(operation)
            problems = validate(body, shape_in)
            if problems:
                raise ServiceError("InvalidParameterException", "; ".join(problems))
            out = getattr(self, f"_{operation}")(body)
            entry.update(outcome="ok", response=out)
            status = 200
        except ServiceError as e:
            out = {"__type": e.code, "Message": e.message}
            entry.update(outcome=e.code, response=out)
            status = e.status
        except KeyError as e:
            out = {"__type": "InvalidParameterException", "Message": f"unknown operation or parameter: {e}"}
            entry.update(outcome="InvalidParameterException", response=out)
            status = 400
        with self.lock:
            self.calls.append(entry)
        return status, out

    def _image(self, image: dict) -> bytes:
        if "Bytes" not in image:
            raise ServiceError("InvalidParameterException", "only image Bytes are supported by this fake (no S3Object)")
        data = base64.b64decode(image["Bytes"])
        if len(data) > MAX_IMAGE_BYTES:
            raise ServiceError("ImageTooLargeException", "Image size is too large.")
        return data

    def _collection(self, cid: str) -> dict:
        if cid not in self.collections:
            raise ServiceError("ResourceNotFoundException", f"The collection id: {cid} does not exist")
        return self.collections[cid]

    # -- operations ------------------------------------------------------------------------
    def _CompareFaces(self, body: dict) -> dict:
        quality = body.get("QualityFilter", "NONE")
        threshold = float(body.get("SimilarityThreshold", 80.0))
        src = [f for f in analyse(self._image(body["SourceImage"])) if _passes(f, quality)]
        tgt = [f for f in analyse(self._image(body["TargetImage"])) if _passes(f, quality)][:100]
        if not src or not tgt:
            raise ServiceError("InvalidParameterException", "Request has invalid parameters")
        s = src[0]
        scored = sorted(((similarity(s["desc"], f["desc"]), i, f) for i, f in enumerate(tgt)),
                        key=lambda x: (-x[0], x[1]))
        face = lambda f: {"BoundingBox": _bbox(f), "Confidence": 99.9}  # noqa: E731
        return {"SourceImageFace": face(s),
                "FaceMatches": [{"Similarity": sim, "Face": face(f)} for sim, _, f in scored if sim >= threshold],
                "UnmatchedFaces": [face(f) for sim, _, f in scored if sim < threshold]}

    def _CreateCollection(self, body: dict) -> dict:
        cid = body["CollectionId"]
        with self.lock:
            if cid in self.collections:
                raise ServiceError("ResourceAlreadyExistsException", f"The collection id: {cid} already exists")
            self.collections[cid] = {"faces": [], "created": time.time()}
        return {"StatusCode": 200, "CollectionArn": f"aws:rekognition:{self.region}:{ACCOUNT}:collection/{cid}",
                "FaceModelVersion": FACE_MODEL_VERSION}

    def _DeleteCollection(self, body: dict) -> dict:
        with self.lock:
            self._collection(body["CollectionId"])
            del self.collections[body["CollectionId"]]
        return {"StatusCode": 200}

    def _DescribeCollection(self, body: dict) -> dict:
        c = self._collection(body["CollectionId"])
        return {"FaceCount": len(c["faces"]), "FaceModelVersion": FACE_MODEL_VERSION,
                "CollectionARN": f"arn:aws:rekognition:{self.region}:{ACCOUNT}:collection/{body['CollectionId']}",
                "CreationTimestamp": c["created"], "UserCount": 0}

    def _ListCollections(self, body: dict) -> dict:
        ids = sorted(self.collections)
        return {"CollectionIds": ids, "FaceModelVersions": [FACE_MODEL_VERSION] * len(ids)}

    def _IndexFaces(self, body: dict) -> dict:
        c = self._collection(body["CollectionId"])
        quality = body.get("QualityFilter", "AUTO")
        max_faces = int(body.get("MaxFaces", 100))
        faces = analyse(self._image(body["Image"]))
        image_id = str(uuid.uuid4())
        records, unindexed = [], []
        for f in faces:
            detail = {"BoundingBox": _bbox(f), "Confidence": 99.9}
            if not _passes(f, quality):
                unindexed.append({"Reasons": ["SMALL_BOUNDING_BOX"], "FaceDetail": detail})
            elif len(records) >= max_faces:
                unindexed.append({"Reasons": ["EXCEEDS_MAX_FACES"], "FaceDetail": detail})
            else:
                rec = {"FaceId": str(uuid.uuid4()), "BoundingBox": _bbox(f), "ImageId": image_id, "Confidence": 99.9}
                if "ExternalImageId" in body:
                    rec["ExternalImageId"] = body["ExternalImageId"]
                with self.lock:
                    c["faces"].append({**rec, "desc": f["desc"]})
                records.append({"Face": rec, "FaceDetail": detail})
        return {"FaceRecords": records, "FaceModelVersion": FACE_MODEL_VERSION, "UnindexedFaces": unindexed}

    def _SearchFacesByImage(self, body: dict) -> dict:
        c = self._collection(body["CollectionId"])
        quality = body.get("QualityFilter", "NONE")
        threshold = float(body.get("FaceMatchThreshold", 80.0))
        max_faces = int(body.get("MaxFaces", 80))
        faces = [f for f in analyse(self._image(body["Image"])) if _passes(f, quality)]
        if not faces:
            raise ServiceError("InvalidParameterException", "There are no faces in the image. Should be at least 1.")
        q = faces[0]
        scored = [(similarity(q["desc"], g["desc"]), i, g) for i, g in enumerate(c["faces"])]
        scored = sorted((x for x in scored if x[0] >= threshold), key=lambda x: (-x[0], x[1]))[:max_faces]
        return {"SearchedFaceBoundingBox": _bbox(q), "SearchedFaceConfidence": 99.9,
                "FaceMatches": [{"Similarity": sim, "Face": {**{k: v for k, v in g.items() if k != "desc"},
                                                             "IndexFacesModelVersion": FACE_MODEL_VERSION}}
                                for sim, _, g in scored],
                "FaceModelVersion": FACE_MODEL_VERSION}


class _Handler(BaseHTTPRequestHandler):
    service: FakeRekognition = None  # set per server class

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        target = self.headers.get("X-Amz-Target", "")
        if not target.startswith("RekognitionService."):
            status, out = 400, {"__type": "UnknownOperationException", "Message": f"bad X-Amz-Target {target!r}"}
        elif self.headers.get("Content-Type", "").split(";")[0] != "application/x-amz-json-1.1":
            status, out = 400, {"__type": "SerializationException", "Message": "expected application/x-amz-json-1.1"}
        else:
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                status, out = 400, {"__type": "SerializationException", "Message": "body is not JSON"}
            else:
                status, out = self.service.handle(target.split(".", 1)[1], body, self.headers.get("Authorization", ""))
        blob = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if status != 200:
            self.send_header("x-amzn-ErrorType", out.get("__type", ""))
        self.send_header("Content-Length", str(len(blob)))
        self.end_headers()
        self.wfile.write(blob)


class FakeServer:
    """``with FakeServer() as fake: fake.url, fake.service.calls ...``: a fake on a free port."""

    def __init__(self, **kwargs):
        self.service = FakeRekognition(**kwargs)
        handler = type("Handler", (_Handler,), {"service": self.service})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
