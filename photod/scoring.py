"""Score photos with the aesthetic model: decode in parallel, infer in batches, map to stars.

`Scorer` is the one entry point the CLI, the daemon, the suggestion search and the web page share.
The model is loaded on first use, on the requested device (`auto` picks CUDA, then MPS, then the
CPU). Decoding runs in a thread pool ahead of inference (Pillow and libjpeg release the GIL), so
on a 2-core laptop the cores stay busy and on a GPU the decoders feed large batches.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from photod.decode import DEFAULT_MAX_PIXELS, DecodedImage, decode_image
from photod.errors import DecodeError, ModelError, PhotodError
from photod.stars import FALLBACK_THRESHOLDS, StarMapping

log = logging.getLogger("photod")

DEFAULT_MODEL = "photod-aesthetic-v2"
# Fewer torch threads while decode threads run (see `Scorer._threads_beside_decoders`).
AUTO_THREADS = True


@dataclass
class ScoreResult:
    """The outcome for one file; `to_dict` is the `--json` and web API shape."""

    path: str
    model: str
    score: float | None = None
    stars: int | None = None
    status: str = "ok"
    error: str | None = None
    error_code: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    exif: dict[str, Any] = field(default_factory=dict)
    embedding: np.ndarray | None = field(default=None, repr=False)
    # Outputs of the extra heads the Scorer was asked for (`Scorer(heads=...)`), by head name.
    head_outputs: dict[str, float | list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        extra = {"heads": self.head_outputs} if self.head_outputs else {}
        return {
            "path": self.path,
            "score": None if self.score is None else round(self.score, 4),
            "stars": self.stars,
            "status": self.status,
            "error": self.error,
            "model": self.model,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            **extra,
        }


def resolve_device(device: str = "auto") -> str:
    """`auto` -> the best available of cuda, mps, cpu; an explicit device is checked."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("device 'cuda' requested but no CUDA device is available")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelError("device 'mps' requested but MPS is not available")
    if device != "cpu" and not device.startswith(("cuda", "mps")):
        raise ModelError(f"unknown device {device!r} (use auto, cpu, cuda or mps)")
    return device


class Scorer:
    """Loads a model lazily and scores pixel arrays or files in batches."""

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        batch_size: int = 32,
        decode_workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        star_mapping: StarMapping | None = None,
        torch_threads: int | None = None,
        heads: Sequence[str] = (),
    ) -> None:
        """`heads`: extra heads of the model file (e.g. "preference") whose outputs `score_paths`
        puts in each result's `head_outputs`, computed in the same backbone pass as the score."""
        from photod.models import active_model_name, get_model_spec

        # No name: the active model (a personal one that beat the shipped model, or the default).
        model = model or active_model_name()
        self.spec = get_model_spec(model)
        self.model_name = model
        self.requested_device = device
        self.batch_size = max(1, batch_size)
        self._decode_workers = decode_workers
        # Threads of the CPU forward pass (process-wide torch setting, applied at model load);
        # None keeps torch's default (one per core).
        self.torch_threads = torch_threads
        self.max_pixels = max_pixels
        card_thresholds = self.spec.card.get("star_thresholds") or FALLBACK_THRESHOLDS
        self.star_mapping = star_mapping or StarMapping(tuple(card_thresholds))
        self.heads = tuple(heads)
        self._check_heads(self.heads)
        self._net: Any = None
        self._device: str | None = None
        self._lock = threading.Lock()

    @property
    def head_names(self) -> list[str]:
        """Every head the model file carries ("rating" first), from its card."""
        return list(self.spec.heads)

    def _check_heads(self, heads: Sequence[str]) -> None:
        import difflib

        known = self.head_names
        for name in heads:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=2)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise ModelError(
                    f"model {self.model_name!r} has no head {name!r}{hint} "
                    f"(heads: {', '.join(known)})"
                )

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def decode_workers(self) -> int:
        """Decode threads: one per core on the CPU (inference shares the cores); on a GPU, which
        needs little CPU to run the model, up to 32 so that decoding keeps up with it."""
        if self._decode_workers:
            return self._decode_workers
        cores = os.cpu_count() or 2
        return min(32, cores) if self.device.startswith("cuda") else min(8, cores)

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.requested_device)
        return self._device

    @property
    def net(self) -> Any:
        with self._lock:
            if self._net is None:
                from photod.models import load_model

                if self.torch_threads:
                    import torch

                    torch.set_num_threads(self.torch_threads)
                # debug: one-shot commands show a progress bar; the daemon and the web page
                # announce their model themselves.
                log.debug("loading model %s on %s", self.model_name, self.device)
                net = load_model(self.model_name, device=self.device)
                if self.device == "cpu":
                    net = fold_batchnorm(net)
                self._net = net
            return self._net

    def score_pixels(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Scores [N] and embeddings [N, 1280] for HxWx3 uint8 arrays, in batches."""
        outputs, embeddings = self.score_heads(images)
        return outputs["rating"], embeddings

    def score_heads(
        self, images: Sequence[np.ndarray], heads: Sequence[str] = ()
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """({"rating": [N], head: [N] or [N, K], ...}, embeddings [N, 1280]) for HxWx3 uint8
        arrays: every requested extra head from the same backbone pass as the rating."""
        import torch

        from photod.models.preprocess import to_tensor

        self._check_heads(heads)
        names = [h for h in heads if h != "rating"]
        net = self.net
        parts: dict[str, list[np.ndarray]] = {"rating": [], **{h: [] for h in names}}
        embeddings = []
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = to_tensor(images[start : start + self.batch_size])
                batch = batch.to(self.device, dtype=dtype, non_blocking=True)
                if names:
                    out, embedding = net.forward_heads(batch, names)
                else:  # the rating alone: any model with forward_all (plug-ins too)
                    score, embedding = net.forward_all(batch)
                    out = {"rating": score}
                for name, value in out.items():
                    parts[name].append(value.float().cpu().numpy())
                embeddings.append(embedding.float().cpu().numpy())
        if not embeddings:
            return {name: np.zeros(0, np.float32) for name in parts}, np.zeros(
                (0, 1280), np.float32
            )
        return {k: np.concatenate(v) for k, v in parts.items()}, np.concatenate(embeddings)

    def decode(self, path: str | os.PathLike[str]) -> DecodedImage:
        return decode_image(path, min_side=224, max_pixels=self.max_pixels)

    def _decode_for_model(self, path: str | os.PathLike[str]) -> DecodedImage:
        return decode_for_model(path, self.max_pixels)

    def score_paths(
        self,
        paths: Iterable[str | os.PathLike[str]],
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[ScoreResult]:
        """Decode ahead in threads, score in batches; yields one result per path, in order.

        A file that fails to decode yields an error result and never stops the others.
        """
        import photod.models.preprocess  # noqa: F401  (import torch here, not in a decoder)

        pending: list[tuple[str, Future[DecodedImage]]] = []
        with (
            ThreadPoolExecutor(self.decode_workers, thread_name_prefix="photod-decode") as pool,
            self._threads_beside_decoders(),
        ):
            try:
                for path in paths:
                    pending.append((str(path), pool.submit(self._decode_for_model, path)))
                    # Keep about two batches decoding ahead of the model, not the whole folder.
                    if len(pending) >= 2 * self.batch_size:
                        yield from self._score_ready(pending[: self.batch_size], progress)
                        pending = pending[self.batch_size :]
                while pending:
                    yield from self._score_ready(pending[: self.batch_size], progress)
                    pending = pending[self.batch_size :]
            finally:
                # Closed early (a stop request): decodes not started yet are dropped, not run.
                pool.shutdown(wait=False, cancel_futures=True)

    @contextlib.contextmanager
    def _threads_beside_decoders(self) -> Iterator[None]:
        """While decoders run, give the CPU forward pass only the cores they leave free.

        torch's intra-op threads meet at a barrier after every layer; when decode threads take
        their cores, a descheduled torch thread stalls the whole batch at each barrier.
        Measured on 2 cores (README, "Benchmarks"): one inference thread beside two decoders
        scores faster than two. An explicit `torch_threads` is left alone, as is the GPU.
        """
        if not AUTO_THREADS or self.torch_threads or self.device != "cpu":
            yield
            return
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - self.decode_workers))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _score_ready(
        self,
        chunk: list[tuple[str, Future[DecodedImage]]],
        progress: Callable[[int], None] | None,
    ) -> Iterator[ScoreResult]:
        outcomes: list[tuple[str, DecodedImage | PhotodError]] = []
        for path, future in chunk:
            try:
                outcomes.append((path, future.result()))
            except PhotodError as exc:
                outcomes.append((path, exc))
            except Exception as exc:  # an unexpected library error is still one file's problem
                log.exception("unexpected error decoding %s", path)
                outcomes.append(
                    (path, DecodeError(f"unexpected {type(exc).__name__}: {exc}", path))
                )
        results = self.score_decoded(outcomes)
        if progress:
            progress(len(results))
        yield from results

    def score_decoded(
        self, outcomes: Sequence[tuple[str, DecodedImage | PhotodError]]
    ) -> list[ScoreResult]:
        """One result per (path, decoded image or its decode error), in order; the images are
        scored in one pass. `score_paths` and the Ray batch job (`photod.batch`) share this."""
        results: list[ScoreResult] = []
        decoded: list[tuple[ScoreResult, DecodedImage]] = []
        for path, image in outcomes:
            result = ScoreResult(path=path, model=self.version)
            if isinstance(image, PhotodError):
                self._fail(result, image)
            else:
                result.width, result.height = image.original_size
                result.format = image.format
                result.exif = image.exif
                decoded.append((result, image))
            results.append(result)
        if decoded:
            outputs, embeddings = self.score_heads(
                [image.pixels for _, image in decoded], self.heads
            )
            for k, ((result, _), embedding) in enumerate(zip(decoded, embeddings, strict=True)):
                self._set_score(result, float(outputs["rating"][k]), embedding)
                if result.status == "ok":
                    result.head_outputs = {
                        name: outputs[name][k].tolist() for name in self.heads if name != "rating"
                    }
        return results

    def _set_score(self, result: ScoreResult, score: float, embedding: Any) -> None:
        """Store a model output; a NaN or infinite one is an error, never a score or stars."""
        if not math.isfinite(score) or (
            embedding is not None and not np.isfinite(np.asarray(embedding)).all()
        ):
            result.score = result.stars = result.embedding = None
            self._fail(
                result, ModelError(f"the model gave a non-finite score ({score})", result.path)
            )
            return
        result.status, result.error, result.error_code = "ok", None, None
        result.score = score
        result.stars = self.star_mapping.stars(score)
        result.embedding = embedding

    @staticmethod
    def _fail(result: ScoreResult, exc: PhotodError) -> None:
        result.status = "error"
        result.error = exc.message_for(result.path)
        result.error_code = exc.code
        # Reported once, by whoever shows the result (a CLI line, the daemon's log, the page).
        log.debug("%s", exc)


def decode_for_model(
    path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS
) -> DecodedImage:
    """Decode `path`, then resize to the model's input size: what a decode thread (or a Ray decode
    task) hands to `Scorer.score_decoded`, so the thread running the model only stacks and
    normalises (same pixels either way)."""
    from photod.models.preprocess import resize_for_model

    decoded = decode_image(path, min_side=224, max_pixels=max_pixels)
    decoded.pixels = resize_for_model(decoded.pixels)
    return decoded


def fold_batchnorm(net: Any, tolerance: float = 1e-3) -> Any:
    """Fold every eval-mode BatchNorm into the convolution just before it (CPU inference).

    On the CPU, batch norm costs about a quarter of EfficientNet-Lite0's forward time; folded into
    the convolution weights it costs nothing (measured: ~20 % less CPU per photo, see the
    "Benchmarks" section of the README). Each BatchNorm module is replaced by its activation
    alone, so the module tree keeps its layout (`backbone.bn1(backbone.conv_stem(x))` still
    works). A conv and a BatchNorm are folded only when they are consecutive children of the same
    module, which is their order in timm's EfficientNet; the folded network is then checked
    against the original on a probe batch and the original is kept if they disagree.
    """
    import copy

    import torch
    from torch import nn

    folded = copy.deepcopy(net)
    count = 0
    with torch.no_grad():
        for parent in folded.modules():
            children = list(parent.named_children())
            for (_, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
                if not (
                    isinstance(conv, nn.Conv2d)
                    and isinstance(bn, nn.BatchNorm2d)
                    and bn.track_running_stats
                    and bn.running_mean is not None
                    and conv.weight.dtype == torch.float32
                ):
                    continue
                scale = (bn.weight if bn.affine else 1.0) / torch.sqrt(bn.running_var + bn.eps)
                shift = bn.bias if bn.affine else 0.0
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
                conv.bias = nn.Parameter((bias - bn.running_mean) * scale + shift)
                # timm's BatchNormAct2d = norm, then drop (identity in eval), then activation.
                rest = [getattr(bn, name) for name in ("drop", "act") if hasattr(bn, name)]
                setattr(parent, bn_name, nn.Sequential(*rest) if rest else nn.Identity())
                count += 1
    if count == 0 or not hasattr(net, "forward_all"):
        return net
    probe = torch.rand(2, 3, 224, 224).mul_(2).sub_(1)
    probe = probe.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected, folded_out = net.forward_all(probe), folded.forward_all(probe)
    worst = max(float((a - b).abs().max()) for a, b in zip(expected, folded_out, strict=True))
    if worst > tolerance:
        log.warning("batch-norm folding changed outputs by %.2g; using the unfolded model", worst)
        return net
    log.debug("folded %d batch-norm layers into convolutions (max deviation %.1g)", count, worst)
    return folded.eval()


def iter_photo_paths(inputs: Iterable[str | os.PathLike[str]], recursive: bool) -> Iterator[Path]:
    """Expand files and folders into photo paths (hidden files and sidecars skipped), sorted."""
    from photod.decode import is_supported

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            for child in sorted(path.glob(pattern)):
                if any(part.startswith(".") for part in child.relative_to(path).parts):
                    continue
                if child.is_file() and is_supported(child):
                    yield child
        else:
            yield path
