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

from photod.content_hash import bytes_hash, file_hash
from photod.cpus import _cgroup_cpu_quota, available_cpus  # noqa: F401  (photod.scoring's API)
from photod.decode import DEFAULT_MAX_PIXELS, DecodedImage, decode_image
from photod.errors import DecodeError, ModelError, PhotodError
from photod.models.onnx_backbone import CPU_RUN_BATCH
from photod.models.registry import DEFAULT_MODEL  # noqa: F401  (photod.scoring's API)
from photod.stars import FALLBACK_THRESHOLDS, StarMapping

log = logging.getLogger("photod")

# Fewer torch threads while decode threads run (see `Scorer._threads_beside_decoders`).
AUTO_THREADS = True
BACKENDS = ("auto", "onnx", "torch")


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
    # The index's content hash of the bytes decoded (`photod.content_hash`), with
    # `score_paths(content_hash=True)`.
    content_hash: str | None = None

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


# Default photos per forward pass (`Scorer.batch_size`).
CPU_BATCH = 8
GPU_BATCH = 64
# Photos per ONNX Runtime call on the CPU when no batch size was asked for (see
# models/onnx_backbone.py). The Scorer's batches still set the look-ahead.
ONNX_CPU_RUN_BATCH = CPU_RUN_BATCH
# Batches submitted to the decode threads ahead of the one the model scores (each decoded photo
# held meanwhile is 224x224x3 bytes).
LOOKAHEAD_BATCHES = 4


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
        batch_size: int | None = None,
        decode_workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        star_mapping: StarMapping | None = None,
        torch_threads: int | None = None,
        heads: Sequence[str] = (),
        backend: str = "auto",
    ) -> None:
        """`heads`: extra heads of the model file (e.g. "preference") whose outputs `score_paths`
        puts in each result's `head_outputs`, computed in the same backbone pass as the score.
        `backend` (CPU only): `auto` runs the backbone on ONNX Runtime when the model's file
        ships a matching export (`photod.models.onnx_backbone`), torch otherwise; `onnx`
        requires the export; `torch` never uses it. The heads are torch modules either way."""
        if backend not in BACKENDS:
            raise ModelError(f"unknown backend {backend!r} (use {', '.join(BACKENDS)})")
        from photod.models import active_model_name, get_model_spec

        # No name: the active model (a personal one that beat the shipped model, or the default).
        model = model or active_model_name()
        self.spec = get_model_spec(model)
        self.model_name = model
        self.requested_device = device
        self._batch_size = max(1, batch_size) if batch_size else None
        self._decode_workers = decode_workers
        # Threads of the CPU forward pass (process-wide torch setting, applied at model load);
        # None keeps torch's default (one per core).
        self.torch_threads = torch_threads
        self.max_pixels = max_pixels
        card_thresholds = self.spec.card.get("star_thresholds") or FALLBACK_THRESHOLDS
        self.star_mapping = star_mapping or StarMapping(tuple(card_thresholds))
        self.heads = tuple(heads)
        self._check_heads(self.heads)
        self.requested_backend = backend
        self._net: Any = None
        self._device: str | None = None
        self._lock = threading.Lock()
        # ONNX Runtime sessions of the backbone by intra-op thread count (a session's count is
        # fixed when it is made): one thread beside the decoders, every core without them.
        self._onnx_file: Path | None = None
        self._onnx_sessions: dict[int, Any] = {}
        self._onnx_lock = threading.Lock()
        self._model_threads: int | None = None

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
    def batch_size(self) -> int:
        """Photos per forward pass: as asked, else CPU_BATCH on the CPU (per photo, Lite0 costs
        a third more at batch 32 than at 4-16 on a 2-core CPU: activations stay in cache) and
        GPU_BATCH on a GPU."""
        if self._batch_size:
            return self._batch_size
        return CPU_BATCH if self.device == "cpu" else GPU_BATCH

    @property
    def decode_workers(self) -> int:
        """Decode threads: one per core on the CPU (inference shares the cores); on a GPU, which
        needs little CPU to run the model, up to 32 so that decoding keeps up with it."""
        if self._decode_workers:
            return self._decode_workers
        cores = available_cpus()
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
                cpu = self.device == "cpu"
                net = load_model(self.model_name, device=self.device, folded=cpu)
                if cpu and not getattr(net, "folded", False):
                    net = fold_batchnorm(net)  # a plug-in's network: folded and checked here
                if cpu and self.requested_backend != "torch":
                    self._onnx_file = self._find_onnx_backbone(net)
                self._net = net
            return self._net

    @property
    def backend(self) -> str:
        """`onnx` or `torch`: what runs the backbone (loads the model to know)."""
        self.net  # noqa: B018
        return "onnx" if self._onnx_file is not None else "torch"

    def _find_onnx_backbone(self, net: Any) -> Path | None:
        """The model file whose backbone export serves `net` (checked by loading a session), or
        None: torch runs it. Only photod's own Lite0 networks qualify: the export was made from
        that file's backbone tensors, and a personal model runs its base's backbone."""
        from photod.models.aesthetic import FoldedAestheticNet
        from photod.models.registry import get_model_spec

        try:
            if not isinstance(net, FoldedAestheticNet):
                raise ModelError(f"{self.model_name} is not a photod Lite0 network")
            base = self.spec.card.get("base")
            weights = get_model_spec(str(base)).weights if base else self.spec.weights
            if weights is None:
                raise ModelError(f"{self.model_name} has no model file")
            self._onnx_session(self._threads_now(), Path(weights))
            return Path(weights)
        except ModelError as exc:
            if self.requested_backend == "onnx":
                raise
            log.debug("scoring with torch: %s", exc)
            return None

    def _threads_now(self) -> int:
        return self.torch_threads or self._model_threads or available_cpus()

    def _onnx_session(self, threads: int, model_file: Path | None = None) -> Any:
        from photod.models import onnx_backbone

        with self._onnx_lock:  # the web page's request threads share one Scorer
            session = self._onnx_sessions.get(threads)
            if session is None:
                model_file = model_file or self._onnx_file
                assert model_file is not None
                session = self._onnx_sessions[threads] = onnx_backbone.load(model_file, threads)
            return session

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

        self._check_heads(heads)
        names = [h for h in heads if h != "rating"]
        self.net  # noqa: B018  (loads the model and decides the backend)
        if self._onnx_file is not None:
            run, step = self._run_onnx, self.batch_size if self._batch_size else ONNX_CPU_RUN_BATCH
        else:
            run, step = self._run_torch, self.batch_size
        parts: dict[str, list[np.ndarray]] = {"rating": [], **{h: [] for h in names}}
        embeddings = []
        with torch.inference_mode():
            for start in range(0, len(images), step):
                out, embedding = run(images[start : start + step], names)
                for name, value in out.items():
                    parts[name].append(value.float().cpu().numpy())
                embeddings.append(embedding)
        if not embeddings:
            return {name: np.zeros(0, np.float32) for name in parts}, np.zeros(
                (0, 1280), np.float32
            )
        return {k: np.concatenate(v) for k, v in parts.items()}, np.concatenate(embeddings)

    def _run_torch(
        self, chunk: Sequence[np.ndarray], names: list[str]
    ) -> tuple[dict[str, Any], np.ndarray]:
        """One forward pass of the torch network: (head outputs, embeddings [n, 1280])."""
        import torch

        from photod.models.preprocess import to_tensor

        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        batch = to_tensor(chunk).to(self.device, dtype=dtype, non_blocking=True)
        if names:
            out, embedding = self.net.forward_heads(batch, names)
        else:  # the rating alone: any model with forward_all (plug-ins too)
            score, embedding = self.net.forward_all(batch)
            out = {"rating": score}
        return out, embedding.float().cpu().numpy()

    def _run_onnx(
        self, chunk: Sequence[np.ndarray], names: list[str]
    ) -> tuple[dict[str, Any], np.ndarray]:
        """The backbone on ONNX Runtime (uint8 pixels in, MLSP features out; the graph
        normalises), then the torch heads over its features."""
        import torch

        from photod.models.backbone import HEAD_CHANNELS
        from photod.models.preprocess import resize_for_model

        session = self._onnx_session(self._threads_now())
        features = session.features(np.stack([resize_for_model(p) for p in chunk]))
        out = self.net.head_outputs(torch.from_numpy(features), names)
        # The pooled head features, the last block of MLSP's (`multilevel_features`).
        return out, features[:, -HEAD_CHANNELS:]

    def decode(self, path: str | os.PathLike[str]) -> DecodedImage:
        return decode_image(path, min_side=224, max_pixels=self.max_pixels)

    def _decode_for_model(
        self,
        path: str | os.PathLike[str],
        content_hash: bool = False,
        skip: Callable[[str, str], bool] | None = None,
    ) -> _Prepared:
        """Read the file once, hash those bytes if asked, decode them and resize to the model's
        input size, all in a decode thread: the thread that runs the model then only stacks and
        normalises (same pixels as `decode` + `resize_for_model`)."""
        data = _read_bytes(path)  # decoded from memory, RAW files too (LibRaw's open_buffer)
        digest = None
        if content_hash:
            digest = bytes_hash(data) if data is not None else _file_hash_or_none(path)
            if digest is not None and skip is not None and skip(str(path), digest):
                return _Prepared(None, digest, skipped=True)
        try:
            decoded = decode_for_model(path, self.max_pixels, data=data)
        except PhotodError as exc:
            return _Prepared(None, digest, exc)
        return _Prepared(decoded, digest)

    def score_paths(
        self,
        paths: Iterable[str | os.PathLike[str]],
        progress: Callable[[int], None] | None = None,
        *,
        content_hash: bool = False,
        skip: Callable[[str, str], bool] | None = None,
    ) -> Iterator[ScoreResult]:
        """Decode ahead in threads, score in batches; yields one result per path, in order.

        `paths` is consumed lazily, `LOOKAHEAD_BATCHES` batches ahead of the model (it may be a
        generator that does work of its own). With `content_hash`, each result carries the content
        hash of the bytes decoded (`ScoreResult.content_hash`), from the same read; then `skip(path,
        hash)`, called in the decode thread, can spare a file its decoding and scoring (its
        result has status `skipped`): the caller knows that content already. A file that fails
        to decode yields an error result and never stops the others.
        """
        import photod.models.preprocess  # noqa: F401  (import torch here, not in a decoder)

        pending: list[tuple[str, Future[_Prepared]]] = []
        with (
            ThreadPoolExecutor(
                self.decode_workers,
                thread_name_prefix="photod-decode",
                initializer=_yield_to_the_model if self._auto_threads else None,
            ) as pool,
            self._threads_beside_decoders() as use_all_cores,
        ):
            try:
                for path in paths:
                    job = pool.submit(self._decode_for_model, path, content_hash, skip)
                    pending.append((str(path), job))
                    # Keep a few batches decoding ahead of the model, not the whole folder:
                    # with two, the decoders finished the next batch while the model still ran
                    # and a core sat idle for a third of the time (measured on 2 cores).
                    if len(pending) >= LOOKAHEAD_BATCHES * self.batch_size:
                        yield from self._score_ready(pending[: self.batch_size], progress)
                        pending = pending[self.batch_size :]
                while pending:
                    if all(future.done() for _, future in pending):
                        # The decoders are done: the last batches get every core.
                        use_all_cores(len(pending))
                    yield from self._score_ready(pending[: self.batch_size], progress)
                    pending = pending[self.batch_size :]
            finally:
                # Closed early (a stop request): decodes not started yet are dropped, not run.
                pool.shutdown(wait=False, cancel_futures=True)

    @property
    def _auto_threads(self) -> bool:
        return AUTO_THREADS and not self.torch_threads and self.device == "cpu"

    @contextlib.contextmanager
    def _threads_beside_decoders(self) -> Iterator[Callable[[int], None]]:
        """While decoders run, give the CPU forward pass only the cores they leave free; yields
        a function that gives it every core once the decoders are done.

        torch's intra-op threads meet at a barrier after every layer; when decode threads take
        their cores, a descheduled torch thread stalls the whole batch at each barrier.
        Measured on 2 cores (README, "Benchmarks"): one inference thread beside two decoders
        scores faster than two. An explicit `torch_threads` is left alone, as is the GPU.
        """
        if not self._auto_threads:
            yield lambda remaining: None
            return
        import torch

        before = torch.get_num_threads()
        beside = max(1, available_cpus() - self.decode_workers)
        torch.set_num_threads(beside)
        self._model_threads = beside  # ONNX Runtime: the session of that many threads

        def use_all_cores(remaining: int) -> None:
            torch.set_num_threads(available_cpus())
            # An ONNX Runtime session of every core costs ~0.1 s to make: worth it for more
            # than one batch (not for `photod score ONE.jpg`).
            if self._onnx_file is None or remaining > self.batch_size:
                self._model_threads = available_cpus()

        try:
            yield use_all_cores
        finally:
            torch.set_num_threads(before)
            self._model_threads = None

    def _score_ready(
        self,
        chunk: list[tuple[str, Future[_Prepared]]],
        progress: Callable[[int], None] | None,
    ) -> Iterator[ScoreResult]:
        self.net  # noqa: B018  (on the first batch: the model loads while the decoders work)
        prepared: list[tuple[str, _Prepared]] = []
        for path, future in chunk:
            try:
                prepared.append((path, future.result()))
            except PhotodError as exc:
                prepared.append((path, _Prepared(None, error=exc)))
            except Exception as exc:  # an unexpected library error is still one file's problem
                log.exception("unexpected error decoding %s", path)
                error = DecodeError(f"unexpected {type(exc).__name__}: {exc}", path)
                prepared.append((path, _Prepared(None, error=error)))
        outcomes: list[tuple[str, DecodedImage | PhotodError]] = []
        for path, item in prepared:
            if not item.skipped:
                outcome = item.error if item.error is not None else item.image
                assert outcome is not None
                outcomes.append((path, outcome))
        scored = iter(self.score_decoded(outcomes))
        results: list[ScoreResult] = []
        for path, item in prepared:
            if item.skipped:  # the caller knows this content already: neither decoded nor scored
                result = ScoreResult(path=path, model=self.version, status="skipped")
            else:
                result = next(scored)
            result.content_hash = item.content_hash
            results.append(result)
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


# How much lower than the model's thread the decode threads run (nice steps) when photod scores
# on the CPU. Decoding gets ahead of the model (LOOKAHEAD_BATCHES); the model's single thread
# must then never wait for a core behind two decoders: at equal priority it got two thirds of
# one, and the photos/s were the model's (measured on 2 cores, README "Benchmarks").
DECODE_NICE = 10


def _yield_to_the_model() -> None:
    """Decode-thread initializer: lower this thread's priority (Linux: per thread)."""
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + DECODE_NICE)
        )


def decode_for_model(
    path: str | os.PathLike[str],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    data: bytes | None = None,
) -> DecodedImage:
    """Decode `path` (from `data`, its bytes, when the caller already read them) resized to the
    model's input size: what a decode thread (or a Ray decode task) hands to
    `Scorer.score_decoded`, so the thread running the model only stacks and normalises. The
    pixels equal `decode_image` + `resize_for_model`; the resize happens inside Pillow."""
    from photod.models.preprocess import INPUT_SIZE

    return decode_image(path, min_side=224, max_pixels=max_pixels, data=data, square=INPUT_SIZE)


@dataclass
class _Prepared:
    """What a decode thread hands the model: pixels or a decode error, and the content hash."""

    image: DecodedImage | None
    content_hash: str | None = None
    error: PhotodError | None = None
    skipped: bool = False


def _read_bytes(path: str | os.PathLike[str]) -> bytes | None:
    """The whole file, or None when it cannot be read (decode_image then says why)."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _file_hash_or_none(path: str | os.PathLike[str]) -> str | None:
    """The content hash of a file read in chunks (RAW files, which LibRaw reads itself)."""
    try:
        return file_hash(path)
    except OSError:
        return None


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
