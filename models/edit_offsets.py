"""The corrections a photo needs, predicted: how many stops it is off and which colour cast it
carries — the starting points of `photod suggest`'s exposure and white-balance steps.

A small MLP (training/train_edit_offsets.py) over `image_statistics`, 111 numbers a CNN feature
does not state plainly: log-luminance percentiles and histogram, clipped and black fractions,
and log-chroma statistics (mean, percentiles, the brightest pixels', the edges' (grey-edge), and
a coarse 2-D log-chroma histogram, the representation colour-constancy methods learn over).
Outputs: the EV that would undo an exposure error and the log red/green and blue/green gains
that would undo a cast. The MLSP features were tried as inputs too: they fit the squashed
224 x 224 PARA photos better and the real full-size photos worse (models/README.md).

Stored in the multi-head model file beside the edit-preference head, under `edit_offsets.*`
(not `heads.*`: an extra head reads MLSP features), described in the card's `edit_offsets`
entry. Numpy only: `photod suggest` on the CPU imports no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PREFIX = "edit_offsets."
OUTPUTS = ("ev", "log_red_green", "log_blue_green")
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
_PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)
_CHROMA_BINS = 8  # per axis of the log-chroma histogram, over +-CHROMA_RANGE
_CHROMA_RANGE = 1.5
_LUMA_BINS = 16  # log2 luminance histogram over [-12, 0]
SAMPLE = 20_000  # pixels sampled (evenly) from the working copy


def image_statistics(pixels: np.ndarray) -> np.ndarray:
    """Exposure and colour statistics [STATISTICS] of an HxWx3 uint8 sRGB image (linear light)."""
    from photod.enhancers.color import LINEAR

    flat = pixels[..., :3].reshape(-1, 3)
    step = max(1, flat.shape[0] // SAMPLE)
    lin = LINEAR[flat[::step]].astype(np.float32)
    luma = lin @ _LUMA
    log_luma = np.log2(luma + 2.0**-12)
    clipped = lin.max(1) >= 0.98
    out = [
        np.percentile(log_luma, _PERCENTILES),
        [log_luma.mean(), log_luma.std(), clipped.mean(), (luma < 2.0**-8).mean()],
        np.histogram(log_luma, _LUMA_BINS, (-12.0, 0.0))[0] / len(log_luma),
    ]
    # Log-chroma of the pixels that carry colour information (not black, not clipped).
    keep = (lin.min(1) > 2.0**-9) & ~clipped
    if keep.sum() < 50:
        keep = np.ones(len(lin), bool)
    rgb = np.maximum(lin[keep], 2.0**-12)
    u, v = np.log(rgb[:, 0] / rgb[:, 1]), np.log(rgb[:, 2] / rgb[:, 1])
    bright = luma[keep] >= np.percentile(luma[keep], 95)
    weights = luma[keep] / (luma[keep].sum() + 1e-9)
    means = np.log(rgb.mean(0))
    out += [
        [u.mean(), v.mean(), u.std(), v.std(), (u * weights).sum(), (v * weights).sum()],
        np.percentile(u, (10, 50, 90)),
        np.percentile(v, (10, 50, 90)),
        [u[bright].mean(), v[bright].mean(), means[0] - means[1], means[2] - means[1]],
        _edge_chroma(pixels),
        np.histogram2d(u, v, _CHROMA_BINS, [[-_CHROMA_RANGE, _CHROMA_RANGE]] * 2)[0].reshape(-1)
        / len(u),
    ]
    return np.concatenate([np.asarray(part, np.float32).reshape(-1) for part in out])


def _edge_chroma(pixels: np.ndarray) -> list[float]:
    """Grey-edge: log red/green and blue/green of the mean gradient magnitude per channel."""
    from photod.enhancers.color import LINEAR

    small = pixels[::2, ::2, :3]
    lin = LINEAR[small].astype(np.float32)
    grad = np.abs(np.diff(lin, axis=0)).mean((0, 1)) + np.abs(np.diff(lin, axis=1)).mean((0, 1))
    grad = np.maximum(grad, 1e-6)
    return [float(np.log(grad[0] / grad[1])), float(np.log(grad[2] / grad[1]))]


STATISTICS = len(image_statistics(np.zeros((8, 8, 3), np.uint8)))


class EditOffsets:
    """The fitted model in numpy: standardise the statistics, two GELU layers, three outputs."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        def get(key: str) -> np.ndarray:
            return np.asarray(state[key], dtype=np.float32)

        self.mean, self.std = get("input_mean"), get("input_std")
        self.layers = [(get(f"{i}.weight").T.copy(), get(f"{i}.bias")) for i in range(3)]
        self.output_scale = get("output_scale")

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        """[N, 3] corrections (EV, log red/green, log blue/green) of N HxWx3 uint8 images."""
        return self.predict(np.stack([image_statistics(image) for image in images]))

    def predict(self, statistics: np.ndarray) -> np.ndarray:
        """[N, 3] corrections of `image_statistics` rows [N, STATISTICS]."""
        from photod.models.edit_preference import gelu

        x = (np.asarray(statistics, np.float32) - self.mean) / self.std
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if i < len(self.layers) - 1:
                x = gelu(x)
        return x / self.output_scale


def state_dict(model: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors as the model file stores them (fp32, under PREFIX)."""
    return {PREFIX + k: np.ascontiguousarray(v, dtype=np.float32) for k, v in model.items()}


def load(path: Path) -> EditOffsets | None:
    """The model file's offsets model, read without torch; None when it has none."""
    from safetensors import safe_open

    if not path.exists():
        return None
    with safe_open(str(path), "np") as handle:
        keys = [k for k in handle.keys() if k.startswith(PREFIX)]
        state: dict[str, Any] = {k[len(PREFIX) :]: handle.get_tensor(k) for k in keys}
    return EditOffsets(state) if "0.weight" in state else None
