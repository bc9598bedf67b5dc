"""The objectives of `photod suggest`: the edit-preference head at each image's own shape (the
product's default: config `suggest_objective`, the CLI, the daemon and the web page) or the
scorer's aesthetic score (`--objective aesthetic`; and what a bare `Scorer` handed to the
library searches with unless `use_objective` says otherwise). On
benchmarks/suggest_quality.py the head's search fixes more exposure errors, casts and margins
and leaves more untouched good photos alone than the aesthetic objective (README).

`EditObjective` is what the search scores candidates with (`score_pixels`, like `Scorer`'s): the
edit-preference head (models/edit_preference.py) over the MLSP features of one backbone pass per
candidate, each candidate resized to its shape bucket (short side 224 px, long side one of a few
fixed sizes: models/buckets.py), never squashed to a square. Batches hold one shape each. On
the CPU the backbone runs on ONNX Runtime (models/onnx_backbone.py) and the head in numpy, so
a `photod suggest` process never imports torch (about 2 s of a cold start); on a GPU, or when
the ONNX export is missing or stale, the folded plain-torch backbone (models/lite.py) serves.
It also carries the offsets model (models/edit_offsets.py: `offsets`, `offset_gates`), the
search's predicted exposure and colour corrections.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from photod.decode import DEFAULT_MAX_PIXELS

log = logging.getLogger("photod")


class EditObjective:
    """Scores versions of one photo with the edit-preference head (higher = better)."""

    def __init__(
        self,
        device: str = "auto",
        batch_size: int = 32,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        model_file: Path | None = None,
        backend: str = "auto",
    ) -> None:
        from photod.models.edit_preference import DEFAULT_MODEL_FILE, read_card

        self.model_file = model_file or DEFAULT_MODEL_FILE
        self.card = read_card(self.model_file)
        self.requested_device = device
        if backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"unknown backend {backend!r} (use auto, onnx or torch)")
        self.backend = backend
        self.batch_size = max(1, batch_size)
        self.max_pixels = max_pixels
        self._net: Any = None
        self._onnx: Any = None
        self._numpy_head: Any = None
        self._offsets: Any = None
        self._gates: dict[str, float] | None = None
        self._device: str | None = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return str(self.card["version"])

    @property
    def default_margin(self) -> float | None:
        """The "suggest nothing" margin calibrated for this head (its card), if any."""
        value = self.card.get("margin", {}).get("chosen")
        return None if value is None else float(value)

    @property
    def device(self) -> str:
        if self._device is None:
            from photod.scoring import resolve_device

            self._device = resolve_device(self.requested_device)
        return self._device

    @property
    def net(self) -> Any:
        """The torch model (backbone + head); built on first use."""
        with self._lock:
            if self._net is None:
                from photod.models.edit_preference import load_edit_model

                log.info("loading edit-preference model %s on %s", self.version, self.device)
                self._net = load_edit_model(self.model_file, self.device)
            return self._net

    @property
    def onnx(self) -> Any:
        """The ONNX Runtime backbone and numpy head, or None (GPU, no onnxruntime, no export, or
        an export of other tensors: then the torch model serves, as before)."""
        with self._lock:
            if self._onnx is None:
                self._onnx = False
                cpu = self.requested_device == "cpu" or (
                    self.requested_device == "auto" and not _cuda_visible()
                )
                if self.backend == "onnx" or (self.backend == "auto" and cpu):
                    from photod.errors import ModelError
                    from photod.models.edit_preference import load_numpy_head
                    from photod.models.onnx_backbone import load

                    try:
                        backbone = load(self.model_file)
                        self._numpy_head = load_numpy_head(self.model_file)
                        self._onnx = backbone
                        log.info("edit-preference model %s on ONNX Runtime (CPU)", self.version)
                    except ModelError as exc:
                        if self.backend == "onnx":
                            raise
                        log.info("edit-preference model on torch: %s", exc)
            return self._onnx or None

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """MLSP features [N, 2848] of HxWx3 uint8 arrays, each at its bucket shape."""
        return self._run(images)

    def score_features(self, features: np.ndarray) -> np.ndarray:
        """Head scores [N] of MLSP features [N, 2848]."""
        if not len(features):
            return np.zeros(0, np.float32)
        if self.onnx is not None:
            return self._numpy_head(features).astype(np.float32)
        import torch

        with torch.inference_mode():
            head = self.net.head
            scores = head(torch.from_numpy(features).to(head.feature_mean.device)).cpu().numpy()
        return scores.reshape(-1).astype(np.float32)

    @property
    def feature_columns(self) -> np.ndarray | None:
        """The MLSP feature columns the head reads on the numpy path (None: all of them)."""
        return self._numpy_head.columns if self.onnx is not None else None

    def offsets(self, images: Sequence[np.ndarray]) -> np.ndarray | None:
        """Predicted corrections [N, 3] of `images` (EV, log red/green, log blue/green gains
        that would undo an exposure error and a colour cast; models/edit_offsets.py); None when
        the model file has no offsets model (the search then climbs its whole ladders)."""
        with self._lock:
            if self._offsets is None:
                from photod.models import edit_offsets

                self._offsets = edit_offsets.load(self.model_file) or False
        return self._offsets(list(images)) if self._offsets else None

    @property
    def offset_gates(self) -> dict[str, float]:
        """The offsets model's noise floors from the card (`edit_offsets.gates`: "ev", "cast"),
        under which the search proposes no exposure or colour edit; {} when it has none."""
        if self._gates is None:
            import json

            card_path = self.model_file.with_suffix(".json")
            card = json.loads(card_path.read_text()) if card_path.exists() else {}
            gates = card.get("edit_offsets", {}).get("gates", {})
            self._gates = {k: float(v) for k, v in gates.items() if isinstance(v, (int, float))}
        return self._gates

    def score_pixels(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(scores [N], MLSP features [N, 2848]) of HxWx3 uint8 arrays."""
        feats = self._run(images)
        return self.score_features(feats), feats

    def roi_maps(self, image: np.ndarray, size: int) -> list[np.ndarray] | None:
        """[stage0 ... stage6, head map] of `image` squashed to `size` x `size` (ONNX path only;
        None on torch, whose RoI scorer reads the network directly)."""
        if self.onnx is None:
            return None
        from photod.models.preprocess import resize_for_model

        square = resize_for_model(np.ascontiguousarray(image[..., :3]), size)
        return [m[0] for m in self.onnx.maps(square[None])]

    def _run(self, images: Sequence[np.ndarray]) -> np.ndarray:
        from photod.models.buckets import group_by_bucket, resize_to_bucket

        out = np.zeros((len(images), 2848), np.float32)
        onnx = self.onnx
        if onnx is not None:
            from photod.models.onnx_backbone import CPU_RUN_BATCH

            # `batch_size` is the torch path's: ONNX Runtime on the CPU is fastest per image.
            for indices in group_by_bucket(images).values():
                for start in range(0, len(indices), CPU_RUN_BATCH):
                    chunk = indices[start : start + CPU_RUN_BATCH]
                    stacked = np.stack([resize_to_bucket(images[i][..., :3]) for i in chunk])
                    out[chunk] = onnx.features(stacked)
            return out
        import torch

        net = self.net
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        with torch.inference_mode():
            for indices in group_by_bucket(images).values():
                for start in range(0, len(indices), self.batch_size):
                    chunk = indices[start : start + self.batch_size]
                    stacked = np.stack([resize_to_bucket(images[i][..., :3]) for i in chunk])
                    x = torch.from_numpy(stacked).permute(0, 3, 1, 2).float().div_(127.5).sub_(1)
                    x = x.contiguous(memory_format=torch.channels_last)
                    feats, _ = net.backbone.features(x.to(self.device, dtype=dtype))
                    out[chunk] = feats.float().cpu().numpy()
        return out


def _cuda_visible() -> bool:
    """Whether a CUDA device may be present, without importing torch (driver files)."""
    import os

    return os.path.exists("/proc/driver/nvidia/version") and os.environ.get(
        "CUDA_VISIBLE_DEVICES", "x"
    ) not in ("", "-1")


OBJECTIVES = ("aesthetic", "edit-preference")
DEFAULT_OBJECTIVE = "aesthetic"


def use_objective(scorer: Any, objective: str) -> Any:
    """Remember on `scorer` which objective its suggestions search with ("aesthetic": its own
    score; "edit-preference": the head, the config's default); returns the scorer."""
    if objective not in OBJECTIVES:
        raise ValueError(
            f"unknown suggest objective {objective!r} (known: {', '.join(OBJECTIVES)})"
        )
    scorer.suggest_objective = objective
    return scorer


def objective_for(scorer: Any, objective: str | None = None) -> Any:
    """The search objective for `scorer`.

    `objective` (else the scorer's `suggest_objective`, set by `use_objective` or
    `photod.config.scorer_from_settings`, else "aesthetic" for a bare Scorer) picks it:
    "aesthetic" is the scorer itself (its aesthetic score); "edit-preference" is an
    EditObjective on the same
    device, cached on the scorer, when the head is installed (else the scorer, logged). An
    EditObjective passed in is its own objective.
    """
    if isinstance(scorer, EditObjective) or not hasattr(scorer, "spec"):
        return scorer
    if objective is None:
        objective = getattr(scorer, "suggest_objective", None) or DEFAULT_OBJECTIVE
    if objective not in OBJECTIVES:
        raise ValueError(
            f"unknown suggest objective {objective!r} (known: {', '.join(OBJECTIVES)})"
        )
    if objective != "edit-preference":
        return scorer
    cached = getattr(scorer, "_edit_objective", None)
    if cached is not None:
        return cached
    from photod.models.edit_preference import has_head

    if not has_head():
        log.warning("edit-preference head not installed; suggestions use the aesthetic score")
        return scorer
    edit = EditObjective(
        device=scorer.requested_device, batch_size=scorer.batch_size, max_pixels=scorer.max_pixels
    )
    scorer._edit_objective = edit
    return edit
