"""Face recognition backends behind one small contract (see ``base.Backend``).

The registry maps a backend family name to its class, imported only when used.
"""

from ..registry import Registry

BACKENDS = Registry("backend")
BACKENDS.register("dlib", "evalkit.backends.dlib_native:DlibBackend")
BACKENDS.register("deepface", "evalkit.backends.deepface_backend:DeepFaceBackend")
BACKENDS.register("facenet", "evalkit.backends.facenet:FaceNetBackend")
BACKENDS.register("onnx", "evalkit.backends.onnx_backend:OnnxBackend")
BACKENDS.register("lbph", "evalkit.backends.lbph:LBPHBackend")
# scoring backends (scores, not embeddings: evalkit.backends.scoring_base)
BACKENDS.register("rekognition", "evalkit.backends.rekognition:RekognitionBackend")
BACKENDS.register("scores", "evalkit.backends.score_file:ScoreFileBackend")


def build_backend(family: str, options: dict):
    """Instantiate a backend of the given family with its options (no model loaded yet)."""
    cls = BACKENDS.get(family)
    return cls(**options)
