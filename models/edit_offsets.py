"""The corrections a photo needs, predicted: how many stops it is off and which colour cast it
carries — what `photod suggest`'s exposure and white-balance steps start from.

Exposure: a small MLP (training/train_edit_offsets.py) over `image_statistics`, numbers a CNN
feature does not state plainly: log-luminance percentiles and histograms (a finer one over the
top four stops, where an over-exposed photo piles up under white), clipped and black fractions,
and log-chroma statistics (mean, percentiles, the brightest pixels', the edges' (grey-edge), a
coarse and a fine 2-D log-chroma histogram), and the highlights (`_highlight_statistics`: the
white point of the brightest channel and the shape of the clipped area, which tell half a
stop of error from a photo's own key far better than histograms do: on held-out PARA photos
shifted by 0.3-0.7 EV the right direction went from 73 % to 98 % under and from 73 % to 86 %
over, the median error of all held-out draws from 0.133 to 0.056 EV).
Output: the EV that would undo an exposure error (and log gains the colour model replaces
when present).

Colour: `ColourModel`, after Barron's FFCC: a linear-light cast shifts every log-chroma
histogram by the log gains; learnt filters convolved with the histograms of the pixels and of
their local contrast (`chroma_histograms`), plus a learnt prior, score every shift, and the
softmax-weighted mean shift is the cast. The convolution makes the estimate follow a cast
whatever the photo's own colours. On held-out photos it leaves a median 0.25 of a cast where
the MLP left 0.48 (models/README.md).

Stored in the multi-head model file beside the edit-preference head, under `edit_offsets.*`
(not `heads.*`: an extra head reads MLSP features), described in the card's `edit_offsets`
entry with the search's gates. Numpy only: `photod suggest` on the CPU imports no torch.
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
# Finer views where the coarse ones blur what the corrections hinge on: the top four stops
# (how much an over-exposed photo has piled up under white) and a log-chroma histogram whose
# bins (0.2) are finer than the casts it must tell apart.
_TOP_BINS = 16  # log2 luminance over [-4, 0]
_FINE_CHROMA_BINS = 16  # per axis, over +-FINE_CHROMA_RANGE
_FINE_CHROMA_RANGE = 1.6
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
        np.histogram(log_luma, _TOP_BINS, (-4.0, 0.0))[0] / len(log_luma),
        (lin >= 0.98).mean(0),
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
        np.histogram2d(u, v, _FINE_CHROMA_BINS, [[-_FINE_CHROMA_RANGE, _FINE_CHROMA_RANGE]] * 2)[
            0
        ].reshape(-1)
        / len(u),
    ]
    out += _highlight_statistics(pixels)
    return np.concatenate([np.asarray(part, np.float32).reshape(-1) for part in out])


def _highlight_statistics(pixels: np.ndarray) -> list[Any]:
    """Where the photo's brightest light sits and how its clipping is shaped: what tells half
    a stop of exposure error from a photo's own key. A finished photo's white point sits near
    white (half a stop under, it does not reach it); half a stop over, clipping spreads into
    large solid patches with short edges, where a clean photo clips in small specular spots.

    From the brightest channel of each pixel (a saturated red clips while its luminance is
    low): percentiles up to the maximum and fine histograms over the top two stops, luminance's
    top percentiles, the mean log luminance of a 4 x 4 grid (relative to the whole), and the
    clipped area: in 4 x 4 blocks wholly and partly clipped, its largest 4-connected patch,
    patches per pixel, its edge against its area, per channel and all three channels."""
    import cv2

    from photod.enhancers.color import LINEAR

    lin = LINEAR[pixels[..., :3]].astype(np.float32)
    brightest = lin.max(2)
    step = max(1, brightest.size // 100_000)
    log_brightest = np.log2(brightest.reshape(-1)[::step] + 2.0**-12)
    log_luma = np.log2(lin.reshape(-1, 3)[::step] @ _LUMA + 2.0**-12)
    h, w = brightest.shape
    grid = np.log2(lin[:: max(1, h // 64), :: max(1, w // 64)] @ _LUMA + 2.0**-12)
    gh, gw = grid.shape
    cells = np.array(
        [
            grid[i * gh // 4 : (i + 1) * gh // 4, j * gw // 4 : (j + 1) * gw // 4].mean()
            for i in range(4)
            for j in range(4)
        ]
    )
    clipped = brightest >= 0.98
    blocks = clipped[: h // 4 * 4, : w // 4 * 4].reshape(h // 4, 4, w // 4, 4)
    half = np.ascontiguousarray(clipped[::2, ::2]).astype(np.uint8)
    count, _, components, _ = cv2.connectedComponentsWithStats(half, connectivity=4)
    largest = components[1:, cv2.CC_STAT_AREA].max() / half.size if count > 1 else 0.0
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    inner = cv2.erode(
        clipped.astype(np.uint8), cross, borderType=cv2.BORDER_CONSTANT, borderValue=0
    ).astype(bool)
    top = lin[clipped]
    return [
        np.percentile(log_brightest, (50, 90, 99, 99.5, 99.9, 100)),
        np.percentile(log_luma, (99.5, 99.9, 100)),
        np.histogram(log_brightest, 16, (-2.0, 0.0))[0] / len(log_brightest),
        cells - grid.mean(),
        np.histogram(log_brightest, 16, (-1.0, 0.0))[0] / len(log_brightest),
        [
            blocks.all((1, 3)).mean(),
            blocks.any((1, 3)).mean(),
            largest,
            (count - 1) / half.size * 100,
            ((brightest >= 0.7) & ~clipped).mean(),
            (clipped & ~inner).mean(),
            (top.min(1) >= 0.98).mean() if len(top) else 0.0,
        ],
        (lin >= 0.98).mean((0, 1)),
    ]


def _edge_chroma(pixels: np.ndarray) -> list[float]:
    """Grey-edge: log red/green and blue/green of the mean gradient magnitude per channel."""
    from photod.enhancers.color import LINEAR

    small = pixels[::2, ::2, :3]
    lin = LINEAR[small].astype(np.float32)
    grad = np.abs(np.diff(lin, axis=0)).mean((0, 1)) + np.abs(np.diff(lin, axis=1)).mean((0, 1))
    grad = np.maximum(grad, 1e-6)
    return [float(np.log(grad[0] / grad[1])), float(np.log(grad[2] / grad[1]))]


STATISTICS = len(image_statistics(np.zeros((8, 8, 3), np.uint8)))


# The colour model's log-chroma histograms: HIST_BINS per axis of HIST_WIDTH, centred on 0.
HIST_BINS = 64
HIST_WIDTH = 0.05


def chroma_histograms(pixels: np.ndarray) -> np.ndarray:
    """[2, HIST_BINS, HIST_BINS] log-chroma histograms (log r/g, log b/g in linear light) of an
    HxWx3 uint8 image: of its pixels, and of its local contrast (each channel's absolute
    deviation from a 3 x 3 mean: the grey-edge cue), each summing to 1, square-rooted.

    The codes are dithered (a fixed half-code noise) before linearising: 8-bit quantisation
    makes exact R = G pixels pile up at log-chroma 0 whatever the cast, a spike that would
    mark neutral for the model where the photo has no such thing. Dark pixels (under about
    code 25), whose chroma is mostly quantisation noise, are left out."""
    from photod.enhancers.color import srgb_to_linear

    codes = pixels[..., :3]
    if min(codes.shape[:2]) > 300:  # the working copy's detail is more than a histogram needs
        codes = codes[::2, ::2]
    dither = np.random.default_rng(0).uniform(-0.5, 0.5, codes.shape).astype(np.float32)
    lin = srgb_to_linear(np.clip((codes + dither) / 255.0, 0.0, 1.0)).astype(np.float32)
    padded = np.pad(lin, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = lin.shape[:2]
    mean = sum(padded[y : y + h, x : x + w] for y in range(3) for x in range(3)) / 9.0
    edges = np.abs(lin - mean)
    out = np.zeros((2, HIST_BINS, HIST_BINS), np.float32)
    half = HIST_BINS * HIST_WIDTH / 2
    for k, values in enumerate((lin, edges)):
        flat = values.reshape(-1, 3)
        step = max(1, flat.shape[0] // (2 * SAMPLE))
        flat = flat[::step]
        floor = 2.0**-7 if k == 0 else 2.0**-10
        keep = (flat.min(1) > floor) & (lin.reshape(-1, 3)[::step].max(1) < 0.98)
        if keep.sum() < 20:
            continue
        rgb = flat[keep]
        u, v = np.log(rgb[:, 0] / rgb[:, 1]), np.log(rgb[:, 2] / rgb[:, 1])
        hist = np.histogram2d(u, v, HIST_BINS, [[-half, half]] * 2)[0]
        if hist.sum() > 0:
            out[k] = np.sqrt(hist / hist.sum())
    return out


class ColourModel:
    """Where the cast sits, read off the log-chroma histograms (after Barron's FFCC): a cast
    multiplies linear light by gains, which shifts every log-chroma histogram by the log gains;
    a learnt filter per histogram, convolved with it (circularly, by FFT), plus a learnt prior
    over casts, scores every shift, and the softmax-weighted mean shift is the cast. The
    convolution is what makes the estimate follow the cast whatever the photo's own colours:
    the model learns what good photos' histograms look like, once, not per cast."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.filters = np.asarray(state["filters"], np.float32)  # [2, N, N]
        self.prior = np.asarray(state["prior"], np.float32)  # [N, N]
        self.temperature = float(np.asarray(state["temperature"]).reshape(-1)[0])
        self._filters_fft = np.fft.rfft2(self.filters)
        coords = (np.arange(HIST_BINS) + HIST_BINS // 2) % HIST_BINS - HIST_BINS // 2
        self.coords = coords.astype(np.float32) * HIST_WIDTH

    def cast(self, histograms: np.ndarray) -> np.ndarray:
        """[N, 2] casts (log r/g, log b/g) of histograms [N, 2, BINS, BINS]."""
        spectra = np.fft.rfft2(np.asarray(histograms, np.float32))
        scores = np.fft.irfft2((spectra * self._filters_fft).sum(1), s=self.prior.shape)
        scores = (scores + self.prior) / self.temperature
        scores = scores.reshape(len(scores), -1)
        weights = np.exp(scores - scores.max(1, keepdims=True))
        weights = (weights / weights.sum(1, keepdims=True)).reshape(-1, HIST_BINS, HIST_BINS)
        return np.stack(
            [(weights.sum(2) * self.coords).sum(1), (weights.sum(1) * self.coords).sum(1)], 1
        )


class EditOffsets:
    """The fitted model in numpy: standardise the statistics, two GELU layers, three outputs."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        def get(key: str) -> np.ndarray:
            return np.asarray(state[key], dtype=np.float32)

        self.mean, self.std = get("input_mean"), get("input_std")
        if self.mean.shape != (STATISTICS,):
            from photod.errors import ModelError

            raise ModelError(
                f"offsets model reads {self.mean.shape[0]} image statistics, this photod "
                f"computes {STATISTICS}: retrain it (python -m photod.training.train_edit_offsets)"
            )
        self.layers = [(get(f"{i}.weight").T.copy(), get(f"{i}.bias")) for i in range(3)]
        self.output_scale = get("output_scale")
        colour = {k[len("colour.") :]: v for k, v in state.items() if k.startswith("colour.")}
        self.colour = ColourModel(colour) if colour else None

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        """[N, 3] corrections (EV, log red/green, log blue/green) of N HxWx3 uint8 images: the
        MLP's, with the colour model's cast (undone) where the file has one."""
        predicted = self.predict(np.stack([image_statistics(image) for image in images]))
        if self.colour is not None:
            histograms = np.stack([chroma_histograms(image) for image in images])
            predicted[:, 1:] = -self.colour.cast(histograms)
        return predicted

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
