"""Registry of aesthetic models, in the style of timm's `register_model`.

A model is registered by name with a decorator on a factory that returns a ready `torch.nn.Module`
(eval mode, weights loaded). Names are unique; an unknown name raises with close matches suggested.
Third-party models come from the `photod.models` entry-point group, read only when a name is not
found among the built-in ones. Each spec carries its metadata (version, metrics, star thresholds)
without building anything, so `photod models` stays fast and torch-free.

Personal models (a shipped model + a correction learned from the user's own star ratings,
`photod train --from-ratings`) live in `photod.paths.personal_models_dir()`; they are re-read
from there on every lookup, since they are user data that changes while photod runs.
`active_model_name()` is the model photod uses when none is named: the one chosen with `photod
models --use` (or by a personal training run that beat the shipped model), else the shipped
default.
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photod.errors import ModelError
from photod.plugins import load_entry_points

log = logging.getLogger("photod")

# The model used when none is named and none was chosen (`photod models --use`); re-exported as
# `photod.scoring.DEFAULT_MODEL`.
DEFAULT_MODEL = "photod-aesthetic-v2"

WEIGHTS_DIR = Path(__file__).parent / "weights"
ENTRY_POINT_GROUP = "photod.models"


@dataclass
class ModelSpec:
    """What is known about a model before it is built."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    weights: Path | None = None
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.card.get("version", self.name))

    @property
    def release(self) -> str:
        """The version a person reads (`photod models`, /api/status): the card's own version when
        it says more than the name; else when it was trained and which weights (sha256 prefix),
        so two files under one name can be told apart."""
        if self.version != self.name:
            return self.version
        parts = [str(self.card["trained_at"])] if self.card.get("trained_at") else []
        digest = _weights_digest(self.weights)
        if digest:
            parts.append(f"sha256:{digest}")
        return " ".join(parts) or "unversioned"

    @property
    def heads(self) -> dict[str, dict[str, Any]]:
        """The card's heads ({name: {"kind", "metrics", ...}}); "rating" is always among them."""
        heads = dict(self.card.get("heads") or {})
        base = self.card.get("base")
        if base and base != self.name:  # a personal head over a base model keeps its extra heads
            try:
                inherited = get_model_spec(str(base)).heads
            except ModelError:
                inherited = {}
            heads = {**{k: v for k, v in inherited.items() if k != "rating"}, **heads}
        rating = heads.pop("rating", None) or {
            "kind": "mlp",
            "metrics": dict(self.card.get("metrics", {})),
        }
        return {"rating": rating, **heads}

    @property
    def available(self) -> bool:
        return self.weights is None or self.weights.exists()


_REGISTRY: dict[str, ModelSpec] = {}
_DIGESTS: dict[tuple[str, int, int], str] = {}


def _weights_digest(path: Path | None) -> str | None:
    """First 8 hex digits of the weights file's sha256 (cached per file version)."""
    import hashlib

    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()[:8]
    return _DIGESTS[key]


def register_model(
    name: str, *, description: str = "", weights: str | Path | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register `factory(device=..., **kw) -> nn.Module` under `name`.

    `weights` names a file in `models/weights/` (or an absolute path); a JSON card with the same
    stem, if present, supplies version, metrics and star thresholds.
    """

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        weights_path = None
        card: dict[str, Any] = {}
        if weights is not None:
            weights_path = Path(weights)
            if not weights_path.is_absolute():
                weights_path = WEIGHTS_DIR / weights_path
            card_path = weights_path.with_suffix(".json")
            if card_path.exists():
                card = json.loads(card_path.read_text())
        _REGISTRY[name] = ModelSpec(name, factory, description, weights_path, card)
        return factory

    return decorator


def _load_entry_points() -> None:
    load_entry_points(ENTRY_POINT_GROUP)


def _ensure_builtin() -> None:
    import photod.models.zoo  # noqa: F401  (registers the shipped models)


def _personal_specs() -> dict[str, ModelSpec]:
    from photod.models.zoo import personal_model_specs

    return {spec.name: spec for spec in personal_model_specs()}


def list_models() -> list[ModelSpec]:
    """Every registered model, built-in first, then plug-ins, then the user's personal models."""
    _ensure_builtin()
    _load_entry_points()
    return list(_REGISTRY.values()) + list(_personal_specs().values())


def get_model_spec(name: str) -> ModelSpec:
    """The spec registered as `name`, or a `ModelError` that suggests close names."""
    _ensure_builtin()
    if name not in _REGISTRY:
        _load_entry_points()
    if name in _REGISTRY:
        return _REGISTRY[name]
    personal = _personal_specs()
    if name in personal:
        return personal[name]
    known = list(_REGISTRY) + list(personal)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ModelError(f"unknown model {name!r}{hint} (known: {', '.join(sorted(known))})")


def _selection_file() -> Path:
    from photod.paths import personal_models_dir

    return personal_models_dir() / "active.json"


def selected_model_name() -> str | None:
    """The model chosen with `photod models --use` (or a winning personal run), if any."""
    path = _selection_file()
    try:
        return str(json.loads(path.read_text())["model"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable model selection %s: %s", path, exc)
        return None


def active_model_name() -> str:
    """The model used when none is named: the selected one if it still loads, else the default."""
    chosen = selected_model_name()
    if chosen is None or chosen == DEFAULT_MODEL:
        return DEFAULT_MODEL
    try:
        spec = get_model_spec(chosen)
    except ModelError as exc:
        log.warning("selected model is gone (%s); using %s", exc, DEFAULT_MODEL)
        return DEFAULT_MODEL
    if not spec.available:
        log.warning("weights of selected model %s are missing; using %s", chosen, DEFAULT_MODEL)
        return DEFAULT_MODEL
    return chosen


def select_model(name: str | None, reason: str = "") -> None:
    """Make `name` the active model (None or 'default': back to the shipped default), atomically."""
    import os
    import tempfile

    path = _selection_file()
    if name is None or name == "default":
        path.unlink(missing_ok=True)
        return
    get_model_spec(name)  # unknown names fail here, before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"model": name, "reason": reason}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".active.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_model(name: str, device: str = "cpu", folded: bool = False) -> Any:
    """Build model `name` with its weights, in eval mode on `device`.

    `folded`: ask for the inference-only build with batch norm folded (photod's own models on
    the CPU: no timm import); a factory that does not take the flag builds its usual network,
    and the caller folds it (`photod.scoring.fold_batchnorm`) or not.
    """
    spec = get_model_spec(name)
    if not spec.available:
        raise ModelError(f"weights of model {name!r} are missing: {spec.weights}")
    if folded and "folded" in inspect.signature(spec.factory).parameters:
        return spec.factory(device=device, spec=spec, folded=True)
    return spec.factory(device=device, spec=spec)
