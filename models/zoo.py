"""The models photod ships, registered by name, and the user's personal models.

Building one imports torch; listing them does not.

- `photod-aesthetic-v1`: frozen ImageNet EfficientNet-Lite0, MLSP features, MLP head on PARA means.
- `photod-aesthetic-v2` (default, `photod.scoring.DEFAULT_MODEL`): the same frozen features, a
  linear head fitted by ridge regression on PARA means plus synthetic preference pairs
  (models/README.md, training/train_linear.py).
- `photod-aesthetic-v3`: stages 5-6 and the head convolution of the same backbone fine-tuned from
  v2 with PARA means plus 12,000 synthetic preference pairs (training/finetune.py): the best at
  "a photo beats its own degraded version", the objective `photod suggest` uses.
- `photod-aesthetic-v4`: stages 0-3 of the ImageNet backbone frozen, stages 4-6 and the
  head convolution fine-tuned on all 18,000 PARA training images with a pair loss over synthetic
  degradations, a linear head on the MLSP features (training/finetune_v4.py).
- `personal*`: a shipped model plus a linear correction learned from the user's own ratings
  (`photod train --from-ratings`, training/personal.py); the file holds only the correction head,
  the card names the base model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from photod.models.registry import ModelSpec, register_model

log = logging.getLogger("photod")

PERSONAL_PREFIX = "personal"


def _shipped(name: str) -> Any:
    """The builder of a shipped model: its weights and card come from the registry's spec."""

    def build(device: str = "cpu", spec: ModelSpec | None = None, folded: bool = False) -> Any:
        from photod.models.aesthetic import build_aesthetic
        from photod.models.registry import get_model_spec

        return build_aesthetic(spec or get_model_spec(name), device, folded=folded)

    build.__name__ = name.replace("-", "_")
    return build


SHIPPED = {
    "photod-aesthetic-v1": "EfficientNet-Lite0 + MLSP head, trained on PARA aesthetic means",
    "photod-aesthetic-v2": "EfficientNet-Lite0 + MLSP features, linear head on PARA means + "
    "synthetic preference pairs",
    "photod-aesthetic-v3": "EfficientNet-Lite0 with fine-tuned late stages + MLSP linear head, "
    "PARA means + 12,000 synthetic preference pairs",
    "photod-aesthetic-v4": "EfficientNet-Lite0, stages 4-6 fine-tuned on 18,000 PARA photos + "
    "synthetic preference pairs, MLSP linear head",
}
for _name, _description in SHIPPED.items():
    register_model(_name, description=_description, weights=f"{_name}.safetensors")(_shipped(_name))


def build_personal(device: str = "cpu", spec: ModelSpec | None = None, folded: bool = False) -> Any:
    """The base model of a personal spec, its head replaced by base head + personal correction.

    The base is built by its own factory (so a fine-tuned backbone or any later file layout of
    the base comes with it); the personal file holds only the correction (`heads.<name>.*`).
    Files of the earlier layout (a whole `head.*` fine-tuned on the ratings) still load.
    """
    import torch

    from photod.errors import ModelError
    from photod.models.aesthetic import load_weights
    from photod.models.personal import CorrectedHead, load_personal_head
    from photod.models.registry import get_model_spec, load_model

    if spec is None or spec.weights is None:
        raise ModelError("a personal model needs its spec")
    base = get_model_spec(str(spec.card.get("base", "")))
    if base.card.get("base"):
        raise ModelError(f"{spec.name}: its base {base.name} is itself a personal model")
    net = load_model(base.name, device="cpu", folded=folded).float()
    if not hasattr(net, "head"):
        raise ModelError(f"{spec.name}: base {base.name} has no MLSP head to correct")
    if "head" in spec.card:
        correction = load_personal_head(spec.weights, spec.card["head"])
        net.head = CorrectedHead(net.head, correction)
        if hasattr(net, "heads"):
            net.heads[spec.card["head"]] = correction  # the card lists it among the heads
    else:
        load_weights(net, spec.weights)  # earlier layout: the whole head, trained on the ratings
    net = net.eval().to(device).to(memory_format=torch.channels_last)
    return net.half() if device.startswith("cuda") else net


def personal_model_specs(folder: Path | None = None) -> list[ModelSpec]:
    """Specs of the personal models in `folder` (default: the user's personal models folder)."""
    from photod.paths import personal_models_dir

    folder = folder or personal_models_dir()
    specs = []
    for weights in sorted(folder.glob(f"{PERSONAL_PREFIX}*.safetensors")):
        card_path = weights.with_suffix(".json")
        try:
            card = json.loads(card_path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("skipping personal model %s: unreadable card (%s)", weights, exc)
            continue
        n = card.get("n_ratings", card.get("n_train", "?"))
        description = f"{card.get('base', '?')} + a correction learned from {n} of your ratings"
        specs.append(ModelSpec(weights.stem, build_personal, description, weights, card))
    return specs
