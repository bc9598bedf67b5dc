"""The models photod ships, registered by name. Building one imports torch; listing them does not."""

from __future__ import annotations

from typing import Any

from photod.models.registry import ModelSpec, register_model


@register_model(
    "photod-aesthetic-v1",
    description="EfficientNet-Lite0 + MLSP head, trained on PARA aesthetic means",
    weights="photod-aesthetic-v1.safetensors",
)
def photod_aesthetic_v1(device: str = "cpu", spec: ModelSpec | None = None) -> Any:
    from photod.models.aesthetic import build_aesthetic
    from photod.models.registry import get_model_spec

    return build_aesthetic(spec or get_model_spec("photod-aesthetic-v1"), device)
