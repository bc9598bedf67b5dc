"""Enhancers: small pure functions that propose candidate edits of a photo, registered by name.

An enhancer takes the working copy (HxWx3 uint8 sRGB, orientation applied) and an
`EnhanceContext` (faces, saliency, its preset parameters) and returns `Candidate` edits. A
candidate is resolution-independent: pixel edits are point-wise functions (LUTs or per-pixel
colour maths) that render the same way on the working copy and on the full-resolution photo;
geometric edits are a crop given as fractions of the input plus a rotation angle. Each candidate
also says how it reads as Camera Raw (`crs:`) settings, so a suggestion can be written to XMP.

Built-in enhancers live one per module in this package and register themselves with
`@register_enhancer`. Third-party ones come from the `photod.enhancers` entry-point group, which
is read only when a name is not built in (so `photod --help` stays fast). Unknown names raise an
`EnhancerError` with close matches ("did you mean").
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from photod.errors import PhotodError
from photod.plugins import load_entry_points

log = logging.getLogger("photod")

ENTRY_POINT_GROUP = "photod.enhancers"
BUILTIN_MODULES = ("exposure", "white_balance", "tone", "straighten", "crop")
PRESETS_PATH = Path(__file__).with_name("presets.json")


class EnhancerError(PhotodError):
    """An enhancer name or preset that does not exist, or a broken enhancer."""

    code = "enhancer"


# A box as fractions (left, top, right, bottom) of the image it applies to.
Box = tuple[float, float, float, float]


@dataclass
class Candidate:
    """One proposed edit.

    `pixel_op` maps any uint8 HxWx3 array to the edited array point-wise (so it renders the same
    at every resolution and can run in strips); `crop`/`angle` describe a geometric edit of the
    input (rotate by `angle` degrees counter-clockwise about the crop centre, then cut `crop`).
    `crs` holds the Camera Raw settings that express the edit in Lightroom terms.
    """

    enhancer: str
    params: dict[str, Any]
    pixel_op: Callable[[np.ndarray], np.ndarray] | None = None
    crop: Box | None = None
    angle: float = 0.0
    crs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_geometric(self) -> bool:
        return self.crop is not None

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The edited version of `image` (any resolution of the same picture)."""
        if self.pixel_op is not None:
            image = self.pixel_op(image)
        if self.crop is not None:
            from photod.enhancers.geometry import extract

            image = extract(image, self.crop, self.angle)
        return image


@dataclass
class EnhanceContext:
    """What an enhancer may look at besides the pixels; computed once per photo by the search."""

    params: dict[str, Any] = field(default_factory=dict)
    # Face boxes as fractions (l, t, r, b) of the image the enhancer receives.
    faces: list[Box] = field(default_factory=list)
    # Saliency map (float32, any size, sums to 1) of the image the enhancer receives, or None.
    saliency: np.ndarray | None = None


EnhancerFn = Callable[[np.ndarray, EnhanceContext], list[Candidate]]


@dataclass
class EnhancerSpec:
    name: str
    fn: EnhancerFn
    kind: str  # "pixel" (colour/tone, scored by real forward passes) or "geometry"
    description: str = ""

    def candidates(self, image: np.ndarray, context: EnhanceContext) -> list[Candidate]:
        return list(self.fn(image, context))


_REGISTRY: dict[str, EnhancerSpec] = {}
_builtin_loaded = False


def register_enhancer(
    name: str, *, kind: str, description: str = ""
) -> Callable[[EnhancerFn], EnhancerFn]:
    """Decorator: register `fn(image, context) -> list[Candidate]` as enhancer `name`."""
    if kind not in ("pixel", "geometry"):
        raise ValueError(f"enhancer kind must be 'pixel' or 'geometry', not {kind!r}")

    def decorator(fn: EnhancerFn) -> EnhancerFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"enhancer {name!r} is already registered")
        _REGISTRY[name] = EnhancerSpec(name, fn, kind, description or (fn.__doc__ or "").strip())
        return fn

    return decorator


def _ensure_builtin() -> None:
    global _builtin_loaded
    if not _builtin_loaded:
        _builtin_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(f"photod.enhancers.{module}")


def _load_entry_points() -> None:
    load_entry_points(ENTRY_POINT_GROUP)


def list_enhancers() -> list[EnhancerSpec]:
    """Every registered enhancer: built-in ones first, then plug-ins."""
    _ensure_builtin()
    _load_entry_points()
    return list(_REGISTRY.values())


def get_enhancer(name: str) -> EnhancerSpec:
    """The enhancer registered as `name`, or an `EnhancerError` suggesting close names."""
    _ensure_builtin()
    if name not in _REGISTRY:
        _load_entry_points()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(sorted(_REGISTRY))
        raise EnhancerError(f"unknown enhancer {name!r}{hint} (known: {known})")
    return _REGISTRY[name]


def resolve_enhancers(names: Iterable[str] | str | None, preset: str = "default") -> list[str]:
    """Enhancer names to run, in search order: `names` (list or comma string) or the preset's."""
    if names is None:
        names = load_presets(preset)["order"]
    elif isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    resolved = []
    for name in names:
        get_enhancer(name)  # raises with a "did you mean" for a typo
        if name not in resolved:
            resolved.append(name)
    if not resolved:
        raise EnhancerError("no enhancers given")
    return resolved


def load_presets(name: str = "default") -> dict[str, Any]:
    """A search preset from presets.json: order, margins and per-enhancer parameters.

    Named presets override the "default" one key by key (one level deep for `params` and
    `edit_params`, the parameters the edit-preference objective (the default) uses over `params`).
    """
    data = json.loads(PRESETS_PATH.read_text())
    if name not in data:
        close = difflib.get_close_matches(name, list(data), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise EnhancerError(f"unknown preset {name!r}{hint} (known: {', '.join(sorted(data))})")
    preset = json.loads(json.dumps(data["default"]))
    if name != "default":
        override = data[name]
        for key, value in override.items():
            if key in ("params", "edit_params"):
                for enhancer, params in value.items():
                    preset.setdefault(key, {}).setdefault(enhancer, {}).update(params)
            else:
                preset[key] = value
    return preset


__all__ = [
    "Box",
    "Candidate",
    "EnhanceContext",
    "EnhancerError",
    "EnhancerSpec",
    "get_enhancer",
    "list_enhancers",
    "load_presets",
    "register_enhancer",
    "resolve_enhancers",
]
