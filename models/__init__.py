"""The aesthetic network photod scores with, its weights and its model card (installed as `photod.models`).

Importing this package loads no torch: the registry holds names, files and metrics, and a model is
built only when `load_model` is called.
"""

from photod.models.registry import (
    ModelSpec,
    active_model_name,
    get_model_spec,
    list_models,
    load_model,
    register_model,
    select_model,
)

__all__ = [
    "ModelSpec",
    "active_model_name",
    "get_model_spec",
    "list_models",
    "load_model",
    "register_model",
    "select_model",
]
