"""`suggest`: search candidate edits of a photo and keep the variant the aesthetic model prefers.

The search decodes the photo once into a working copy (short side 224-448 px, orientation
applied) and makes every candidate from it; nothing is re-decoded per candidate. Enhancers run in
the preset's order (default: exposure, white balance, tone, straighten, crop) as a greedy
coordinate ascent: each one proposes candidates from the current best image, all are scored in
batches, and the best is kept when it beats the current image by the step margin.

Crops are many (about 100-350 per photo). `crop_ranking` in presets.json chooses how they are
shortlisted for real scores (cropped, resized, full forward pass), which alone decide:

- "roi" (default): every crop gets an approximate score from ONE backbone pass (`roi_scores`:
  the per-stage mean and standard deviation the head reads (MLSP) over each window, from
  integral images of x and x**2, hundreds of windows in milliseconds); the best
  `crop_rescore_top` of them join an even spread of `crop_exact_max` crops.
- "exact": the even spread alone (over every aspect ratio and scale, the saliency-centred crop
  of each first).
- "roi-tail": like "roi" with `roi_tail_scores` (early stages once, RoIAlign of the stage-4
  map, real late stages).

Window scores rank crops only roughly (Spearman about 0.45 with real crop scores for
photod-aesthetic-v2: a crop resized to 224 px is seen at another scale and without its
surroundings' receptive field), which is why they shortlist and never decide; the benchmark
(benchmarks/suggest_quality.py) reports the correlation for every model.

Pixel edits (exposure, white balance, tone) change every activation: always real passes.

With the edit-preference objective (photod/objective.py) three steps start from evidence other
than the head's score, and are "trusted": they need no step margin (at a positive margin they
must only not lower the head's score), the head placing them. Exposure: the offsets model
(models/edit_offsets.py) predicts the EV error; under its gate no exposure is proposed at all,
else 5 candidates 0.1 EV apart around the prediction, the head picking one. White balance: the
colour model's predicted cast, undone (the head ranked grey-world, white-patch and partial
corrections worse than the prediction alone: README). Crop: a frame inside confidently
detected flat borders or a pasted strip (`enhancers/crop.py`, `detected_frame`) is the step's
only candidate; else the grid, whose crops keep at least 80 % of the photo. The whole chain is
still judged by the head's gain.

Nothing is suggested unless the whole chain gains at least `margin` (default from presets.json,
on the model's 1-5 scale; the edit-preference head's from its card, calibrated on held-out
photos by training/calibrate_margin.py) over the untouched photo: a good photo is left alone.
A margin of 0 returns the chain the search found, as found. The model is
only `scorer`: any model the registry builds can drive the search; "roi" ranking needs the
`AestheticNet` layout (backbone + MLSP head) and falls back to the spread otherwise.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from photod.enhancers import (
    Box,
    Candidate,
    EnhanceContext,
    get_enhancer,
    load_presets,
    resolve_enhancers,
)
from photod.enhancers.geometry import compose

if TYPE_CHECKING:
    from photod.scoring import Scorer

log = logging.getLogger("photod")

# The working copy: decode_image keeps the short side between WORKING_MIN_SIDE and twice that.
WORKING_MIN_SIDE = 224
# Input size of the single backbone pass that RoI-pools crop windows (see `roi_scores`).
ROI_INPUT = 320
# Input size of the early-stage pass of `roi_tail_scores`: a crop of ~0.8 of the frame then
# covers about the 14 x 14 stage-4 cells a 224-px crop would have.
ROI_TAIL_INPUT = 288


@dataclass
class Edit:
    """One accepted step of a suggestion."""

    enhancer: str
    params: dict[str, Any]
    gain: float
    score: float
    crs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"enhancer": self.enhancer, "params": self.params, "gain": round(self.gain, 4)}


@dataclass
class Suggestion:
    """The outcome of the search for one photo; `to_dict` is the `--json` / web API object."""

    path: str | None
    score_before: float
    score_after: float
    edits: list[Edit]
    crop: Box | None = None
    angle: float = 0.0
    exposure_ev: float = 0.0
    model: str = ""
    objective: str = "aesthetic"  # or "edit-preference": the units of the scores and the gain
    margin: float = 0.0
    best_score: float = 0.0  # best chain found, even when below the margin
    candidates: int = 0  # edits proposed by the enhancers
    scored: int = 0  # of those, how many got a score (a real pass or a RoI window score)
    full_passes: int = 0  # full forward passes of the model, the untouched photo included
    seconds: float = 0.0
    width: int | None = None
    height: int | None = None
    pixel_ops: list[Callable[[np.ndarray], np.ndarray]] = field(default_factory=list, repr=False)

    @property
    def worthwhile(self) -> bool:
        """True when the search suggests something (its gain cleared the margin)."""
        return bool(self.edits)

    @property
    def gain(self) -> float:
        return self.score_after - self.score_before

    def crs(self) -> dict[str, Any]:
        """All Camera Raw settings of the accepted edits (later edits of a kind add up)."""
        settings: dict[str, Any] = {}
        for edit in self.edits:
            for key, value in edit.crs.items():
                settings[key] = settings.get(key, 0) + value if key in settings else value
        return settings

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "score_before": round(self.score_before, 4),
            "score_after": round(self.score_after, 4),
            "gain": round(self.gain, 4),
            "suggested": self.worthwhile,
            "edits": [edit.to_dict() for edit in self.edits],
            "crop": None if self.crop is None else [round(v, 4) for v in self.crop],
            "angle": round(self.angle, 2),
            "exposure_ev": round(float(self.exposure_ev), 2),
            "crs": self.crs(),
            "model": self.model,
            "objective": self.objective,
            "margin": self.margin,
            "best_score": round(self.best_score, 4),
            "candidates": self.candidates,
            "scored": self.scored,
            "full_passes": self.full_passes,
            "seconds": round(self.seconds, 3),
            "width": self.width,
            "height": self.height,
        }

    def render(self, image: np.ndarray) -> np.ndarray:
        """Apply the suggestion to `image` (the working copy or the full-resolution photo)."""
        from photod.render import apply_suggestion

        return apply_suggestion(image, self)


def suggest_photo(
    path: str | os.PathLike[str],
    scorer: Scorer,
    enhancers: Sequence[str] | str | None = None,
    margin: float | None = None,
    preset: str = "default",
    objective: str | None = None,
) -> Suggestion:
    """Decode `path` once into a working copy and search it; raises `DecodeError` on bad input.

    `objective` ("aesthetic" or "edit-preference"; None: the scorer's own choice, aesthetic
    unless set) is passed to `photod.objective.objective_for`."""
    from photod.decode import decode_image

    started = time.perf_counter()
    decoded = decode_image(path, min_side=WORKING_MIN_SIDE, max_pixels=scorer.max_pixels)
    suggestion = suggest_pixels(decoded.pixels, scorer, enhancers, margin, preset, objective)
    suggestion.path = str(path)
    suggestion.width, suggestion.height = decoded.original_size
    suggestion.seconds = time.perf_counter() - started
    return suggestion


def suggest_pixels(
    pixels: np.ndarray,
    scorer: Scorer,
    enhancers: Sequence[str] | str | None = None,
    margin: float | None = None,
    preset: str = "default",
    objective: str | None = None,
) -> Suggestion:
    """Search edits of an HxWx3 uint8 sRGB array (orientation applied) with `scorer`.

    The objective is `photod.objective.objective_for(scorer, objective)`: the edit-preference
    head (an EditObjective, or a scorer whose `suggest_objective` says so, as the config's
    default does), with the margins from its card (calibrated on held-out photos) and the
    preset's `edit_params` (predicted exposure and colour corrections, detected borders) over
    its `params`; or the scorer's own aesthetic score with the preset's margins and parameters.
    """
    from photod.objective import EditObjective, objective_for

    started = time.perf_counter()
    search = objective_for(scorer, objective)
    edit_head = isinstance(search, EditObjective)
    settings = load_presets(preset)
    names = resolve_enhancers(enhancers, preset)
    if edit_head:
        # The head's own crop shortlist sizes (`edit_crop_*`), where the preset sets them.
        for key in ("crop_exact_max", "crop_rescore_top"):
            settings[key] = settings.get(f"edit_{key}", settings.get(key))
        calibrated = search.card.get("margin", {})
        default_margin = calibrated.get("chosen", settings.get("edit_margin", settings["margin"]))
        step_margins = calibrated.get("step", settings.get("edit_step_margins", {}))
    else:
        default_margin = settings["margin"]
        step_margins = settings.get("step_margins", {})
    margin = float(default_margin if margin is None else margin)
    if edit_head:
        # The head's calibrated margin is a step margin too (no step moves unless it gains
        # that much); a smaller margin asked for explicitly lowers the steps' as well.
        step_margins = {kind: min(float(value), margin) for kind, value in step_margins.items()}
    base = np.ascontiguousarray(pixels[..., :3], dtype=np.uint8)
    height, width = base.shape[:2]

    current = base
    current_score: float | None = None
    frame: Box | None = None
    frame_angle = 0.0
    edits: list[Edit] = []
    ops: list[Callable[[np.ndarray], np.ndarray]] = []
    pending_base = True
    # The offsets model's reading of `current`, kept while no step changes it: the exposure
    # and white-balance steps both start from it.
    offsets_of: tuple[np.ndarray, np.ndarray | None] | None = None
    n_candidates = n_scored = n_full = 0
    base_score = 0.0

    for name in names:
        spec = get_enhancer(name)
        params = dict(settings["params"].get(name, {}))
        if edit_head:
            params.update(settings.get("edit_params", {}).get(name, {}))
        with_prediction = params.pop("with_prediction", None)
        trusted = False
        if with_prediction and edit_head:
            if offsets_of is None or offsets_of[0] is not current:
                offsets_of = (current, search.offsets([current]))
            predicted = offsets_of[1]
            if predicted is not None:
                gates = {f"{k}_gate": v for k, v in search.offset_gates.items()}
                merged = {**params, **gates, **with_prediction}
                params = around_prediction(name, merged, predicted[0])
                # The predicted defect is the evidence for the step; the head places it.
                trusted = bool(params.pop("trusted", False))
        context = EnhanceContext(params=params)
        if name == "crop":
            from photod.enhancers.crop import detect_faces, saliency_map

            context.faces = detect_faces(current)
            context.saliency = saliency_map(current)
        candidates = spec.candidates(current, context)
        if frame_angle:
            # One rotation per chain: a second one would not map onto a single crs:CropAngle.
            candidates = [c for c in candidates if not c.angle]
        if not candidates:
            if pending_base:
                base_score = current_score = float(search.score_pixels([current])[0][0])
                pending_base = False
                n_full += 1
            continue
        n_candidates += len(candidates)
        scores, shortlist, approximated = _score_candidates(
            search, current, candidates, settings, pending_base
        )
        n_full += len(scores)
        n_scored += len(shortlist) + approximated
        if pending_base:
            base_score = current_score = float(scores[0])
            scores = scores[1:]
            pending_base = False
        assert current_score is not None
        best = int(np.argmax(scores))
        chosen, chosen_score = shortlist[best], float(scores[best])
        refined = _refine(spec, current, context, chosen, params)
        if refined:
            n_candidates += len(refined)
            n_scored += len(refined)
            n_full += len(refined)
            refined_scores = search.score_pixels([c.apply(current) for c in refined])[0]
            top = int(np.argmax(refined_scores))
            if float(refined_scores[top]) > chosen_score:
                chosen, chosen_score = refined[top], float(refined_scores[top])
        gain = chosen_score - current_score
        step_margin = float(step_margins.get(spec.kind, 0.0))
        log.debug("%s: best %s gain %+.4f", name, chosen.params, gain)
        # A detected border or pasted strip is, like a predicted correction, found by other
        # evidence than the head's score.
        trusted = trusted or bool(chosen.params.get("detected"))
        # A trusted step needs no margin of its own; in a judged search (margin > 0) it must
        # still not make the photo worse in the head's eyes: a photographer's deliberate warm
        # light reads as a cast to the colour model, and the head says so.
        if trusted:
            threshold = 0.0 if margin > 0 else -np.inf
        else:
            threshold = step_margin
        if gain < threshold:
            continue
        current = chosen.apply(current)
        current_score = chosen_score
        edits.append(Edit(chosen.enhancer, chosen.params, gain, current_score, dict(chosen.crs)))
        if chosen.pixel_op is not None:
            ops.append(chosen.pixel_op)
        if chosen.crop is not None:
            if frame is None:
                frame, frame_angle = chosen.crop, chosen.angle
            else:
                frame = compose(frame, frame_angle, chosen.crop, width, height)
                frame_angle = frame_angle or chosen.angle

    if pending_base:
        base_score = current_score = float(search.score_pixels([current])[0][0])
        n_full += 1
    assert current_score is not None
    best_score = current_score
    # A margin of 0 asks for the search's best chain as found: a trusted step (a predicted
    # correction) may have lowered the head's score, and the user asked to see it anyway.
    if margin > 0 and best_score - base_score < margin:
        edits, ops, frame, frame_angle, current_score = [], [], None, 0.0, base_score
    exposure_ev = sum(float(e.params.get("ev", 0.0)) for e in edits if e.enhancer == "exposure")
    return Suggestion(
        path=None,
        score_before=base_score,
        score_after=current_score,
        edits=edits,
        crop=frame,
        angle=frame_angle,
        exposure_ev=exposure_ev,
        model=getattr(search, "version", ""),
        objective="edit-preference" if edit_head else "aesthetic",
        margin=margin,
        best_score=best_score,
        candidates=n_candidates,
        scored=n_scored,
        full_passes=n_full,
        seconds=time.perf_counter() - started,
        width=width,
        height=height,
        pixel_ops=ops,
    )


def around_prediction(name: str, params: dict[str, Any], predicted: np.ndarray) -> dict[str, Any]:
    """The enhancer's parameters centred on the objective's predicted correction (presets.json
    `with_prediction`, merged into `params` by the caller): exposure gets `ev_around` offsets
    from the predicted EV instead of its ladder, and no candidate at all when the predicted
    error is under `ev_gate` (a well-exposed photo is not re-exposed by a few tenths); white
    balance the predicted gains at each `predicted_strength` (log-space blend toward neutral)
    beside its estimators, and no candidate at all when the predicted cast is under
    `cast_gate`. The gates come from the model card (`EditObjective.offset_gates`). `trusted`
    (kept in the result) marks a step that needs no step margin: the prediction found the
    defect, the head only places the fix."""
    params = dict(params)
    ev, log_red, log_blue = (float(v) for v in predicted[:3])
    if name == "white_balance" and max(abs(log_red), abs(log_blue)) < params.get("cast_gate", 0):
        return {**params, "methods": [], "temperature": [], "tint": [], "estimates": {}}
    if name == "exposure" and "ev_around" in params:
        limit = float(params.get("ev_limit", 2.5))
        ladder = {
            round(float(np.clip(ev + step, -limit, limit)), 2) for step in params["ev_around"]
        }
        gate = float(params.get("ev_gate", 0.0))
        params["ev"] = sorted(v for v in ladder if v != 0) if abs(ev) >= gate else []
    if name == "white_balance" and "predicted_strength" in params:
        params["estimates"] = {"predicted": [float(np.exp(log_red)), 1.0, float(np.exp(log_blue))]}
    return params


def _refine(
    spec: Any,
    image: np.ndarray,
    context: EnhanceContext,
    chosen: Candidate,
    params: dict[str, Any],
) -> list[Candidate]:
    """Candidates around the best one of a one-parameter ladder (presets.json "refine").

    `"refine": {"param": "ev", "steps": [-0.12, 0.12]}` asks the enhancer again for
    best +- each step, so a ladder of 0.25-0.4 EV still lands within about 0.1 EV of the
    objective's optimum (a -1.2 EV photo comes back near +1.2, not at +1.0 or +1.5).
    """
    refine = params.get("refine")
    if not refine:
        return []
    key = refine["param"]
    value = chosen.params.get(key)
    if not isinstance(value, (int, float)):
        return []
    ladder = {round(float(v), 4) for v in params.get(key, [])}
    values = [round(value + step, 4) for step in refine["steps"]]
    values = [v for v in values if v not in ladder and v != 0]
    if not values:
        return []
    context = EnhanceContext(params={**params, key: values}, faces=context.faces)
    context.saliency = None
    return spec.candidates(image, context)


def _score_candidates(
    scorer: Scorer,
    image: np.ndarray,
    candidates: list[Candidate],
    settings: dict[str, Any],
    with_base: bool,
) -> tuple[np.ndarray, list[Candidate], int]:
    """Real scores of the candidates worth a forward pass, those candidates, and how many others
    got only an approximate (RoI) score.

    Plain crops beyond `crop_exact_max` are first cut down to a shortlist: with `crop_ranking`
    "exact" an even spread over aspect ratios, scales and positions (the saliency-centred box
    of each aspect and scale first); with "roi" (default) or "roi-tail" also the best
    `crop_rescore_top` by `roi_scores` or `roi_tail_scores`. Returns (scores, shortlist,
    approximated) with the untouched image's score first when `with_base`.
    """
    shortlist = candidates
    approximated = 0
    limit = int(settings.get("crop_exact_max", 24))
    plain = all(c.crop is not None and not c.angle and c.pixel_op is None for c in candidates)
    if plain and len(candidates) > limit:
        ranked = None
        ranking = settings.get("crop_ranking", "roi")
        boxes = [c.crop for c in candidates]
        if ranking == "roi":
            ranked = roi_scores(scorer, image, boxes)  # type: ignore[arg-type]
        elif ranking == "roi-tail":
            ranked = roi_tail_scores(scorer, image, boxes)  # type: ignore[arg-type]
        elif ranking != "exact":
            raise ValueError(f"unknown crop_ranking {ranking!r} (use roi, roi-tail or exact)")
        shortlist = spread(candidates, limit)
        if ranked is not None:
            # The approximate scores rank crops only roughly (benchmarks/suggest_quality.py), so
            # their best few join the even spread instead of replacing it; real passes decide.
            chosen = {id(c) for c in shortlist}
            for i in np.argsort(-ranked)[: int(settings.get("crop_rescore_top", 6))]:
                if id(candidates[i]) not in chosen:
                    shortlist.append(candidates[i])
                    chosen.add(id(candidates[i]))
            approximated = len(candidates) - len(shortlist)
    images = [c.apply(image) for c in shortlist]
    if with_base:
        images.insert(0, image)
    return scorer.score_pixels(images)[0], shortlist, approximated


def spread(candidates: list[Candidate], limit: int) -> list[Candidate]:
    """At most `limit` crops covering every aspect ratio and scale: detected frames (flat
    borders, pasted strips) first, then for each (aspect, scale) the one nearest the saliency
    centroid (the crop enhancer lists it last), then evenly spaced others."""
    detected = [c for c in candidates if c.params.get("detected")][:limit]
    grid = [c for c in candidates if not c.params.get("detected")]
    limit -= len(detected)
    groups: dict[tuple[Any, Any], list[Candidate]] = {}
    for c in grid:
        groups.setdefault((c.params.get("aspect"), c.params.get("scale")), []).append(c)
    first = [members[-1] for members in groups.values()]
    rest = [c for members in groups.values() for c in members[:-1]]
    if limit <= 0:
        return detected
    if len(first) >= limit:
        step = len(first) / limit
        return detected + [first[int(i * step)] for i in range(limit)]
    room = limit - len(first)
    step = max(1.0, len(rest) / room)
    return detected + first + [rest[int(i * step)] for i in range(min(room, len(rest)))]


def _roi_setup(scorer: Scorer, image: np.ndarray, boxes: Sequence[Box], size: int) -> Any:
    """(backbone, head, a parameter, input tensor at `size`, boxes [N, 4]) for the RoI scorers,
    or None when the model is not an AestheticNet (backbone with stages + MLSP head)."""
    net = getattr(scorer, "net", None)
    backbone = getattr(net, "backbone", None)
    head = getattr(net, "head", None)
    if backbone is None or head is None or not hasattr(backbone, "blocks"):
        return None
    from photod.models.preprocess import to_tensor

    parameter = next(net.parameters())
    x = to_tensor([image], size=size).to(parameter.device, dtype=parameter.dtype)
    return backbone, head, parameter, x, np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _stage_window_stats(
    backbone: Any, stages: Any, x: Any, boxes: np.ndarray
) -> tuple[Any, list[np.ndarray]]:
    """Run the stem and `stages` on `x` (one image); (last stage output, [mean, std] of every
    stage's output over each window, in MLSP order)."""
    h = backbone.bn1(backbone.conv_stem(x))
    pooled: list[np.ndarray] = []
    for stage in stages:
        h = stage(h)
        mean, std = window_stats(h[0].float().cpu().numpy(), boxes)
        pooled += [mean, std]
    return h, pooled


def roi_scores(
    scorer: Scorer, image: np.ndarray, boxes: Sequence[Box], size: int = ROI_INPUT
) -> np.ndarray | None:
    """Approximate scores of crop windows from ONE backbone pass (None if the model can't).

    The working copy is resized to `size` x `size` (squashed, like the model input) and run
    through the backbone once. For each stage output x and the head activations, integral images
    of x and x**2 give the sum and sum of squares over any window; bilinear interpolation of the
    integral image handles windows that do not fall on cell boundaries (exact for the
    piecewise-constant feature map). mean = S/A and std = sqrt((Q - S**2/A) / (A - 1)) reproduce
    torch's global mean/std restricted to the window; the head scores all windows at once.
    """
    maps = scorer.roi_maps(image, size) if hasattr(scorer, "roi_maps") else None
    if maps is not None:
        # The ONNX Runtime path (photod.objective.EditObjective): the same statistics from the
        # stage maps the graph returns, the head in numpy: no torch.
        box_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        pooled = []
        for fmap in maps[:-1]:
            pooled += list(window_stats(fmap, box_array))
        read = getattr(scorer, "feature_columns", None)
        stage_width = sum(p.shape[1] for p in pooled)
        if read is not None and len(read) and read.max() < stage_width:
            # The head ignores the pooled head features: the head map's windows are not pooled.
            pooled.append(np.zeros((len(box_array), maps[-1].shape[0])))
        else:
            pooled.append(window_stats(maps[-1], box_array, std=False)[0])
        return scorer.score_features(np.concatenate(pooled, axis=1).astype(np.float32))
    setup = _roi_setup(scorer, image, boxes, size)
    if setup is None:
        return None
    import torch

    backbone, head, parameter, x, box_array = setup
    with torch.inference_mode():
        h, pooled = _stage_window_stats(backbone, backbone.blocks, x, box_array)
        head_map = backbone.bn2(backbone.conv_head(h))
        pooled.append(window_stats(head_map[0].float().cpu().numpy(), box_array, std=False)[0])
        features = torch.from_numpy(np.concatenate(pooled, axis=1).astype(np.float32))
        scores = head(features.to(parameter.device, dtype=parameter.dtype))
    return scores.float().cpu().numpy()


def roi_tail_scores(
    scorer: Scorer, image: np.ndarray, boxes: Sequence[Box], size: int = ROI_TAIL_INPUT
) -> np.ndarray | None:
    """Scores of crop windows from one pass of the early stages and a real pass of the late ones.

    Grid-anchor cropping (GAIC) style: stages 0-4 run ONCE on the working copy at `size` px; for
    every window, the early stages' MLSP mean/std come from integral images (`window_stats`) and
    the stage-4 map under the window is RoIAligned to the 14 x 14 grid a 224-px crop would give,
    then stages 5-6, the head convolution and the head run for real (batched). Those late
    stages carry the composition the aesthetic model was fine-tuned on, and cost about a fifth
    of a full pass, so hundreds of windows are scored for the price of a few dozen full passes.
    None if the model does not have the AestheticNet layout.
    """
    setup = _roi_setup(scorer, image, boxes, size)
    if setup is None:
        return None
    import torch
    from torchvision.ops import roi_align

    from photod.models.aesthetic import TRUNK_STAGES, tail_forward

    backbone, head, parameter, x, box_array = setup
    with torch.inference_mode():
        h, early = _stage_window_stats(backbone, backbone.blocks[:TRUNK_STAGES], x, box_array)
        early_stats = torch.from_numpy(np.concatenate(early, axis=1).astype(np.float32))
        map_h, map_w = h.shape[-2:]
        rois = torch.from_numpy(box_array * [map_w, map_h, map_w, map_h]).to(h.device)
        rois = torch.cat([torch.zeros(len(rois), 1, device=h.device), rois], 1).to(h.dtype)
        scores = []
        for start in range(0, len(rois), 64):
            pooled = roi_align(
                h, rois[start : start + 64], output_size=(14, 14), aligned=True, sampling_ratio=-1
            )
            stats = early_stats[start : start + 64].to(parameter.device, dtype=parameter.dtype)
            scores.append(tail_forward(backbone, head, pooled, stats)[0].float().cpu().numpy())
    return np.concatenate(scores) if scores else np.zeros(0, np.float32)


def window_stats(
    fmap: np.ndarray, boxes: np.ndarray, std: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-window mean and std [N, C] of a [C, H, W] feature map for boxes [N, 4] in fractions.

    NumPy, not torch: these are hundreds of tiny gathers, and torch's intra-op threads cost more
    in synchronisation than the work itself (measured 6 s vs milliseconds on a loaded 2-core
    machine).
    """
    c, h, w = fmap.shape
    x = np.ascontiguousarray(fmap.transpose(1, 2, 0), dtype=np.float64)  # [H, W, C]
    planes = np.concatenate([x, x * x], axis=2) if std else x
    # Summed-area table with a zero row and column in front: table[y, x] = sum of [0:y, 0:x].
    table = np.zeros((h + 1, w + 1, planes.shape[2]), np.float64)
    table[1:, 1:] = planes.cumsum(0).cumsum(1)
    x0, x1 = boxes[:, 0] * w, boxes[:, 2] * w
    y0, y1 = boxes[:, 1] * h, boxes[:, 3] * h

    def at(px: np.ndarray, py: np.ndarray) -> np.ndarray:
        # Bilinear read of the table at continuous (x, y): exact for piecewise-constant maps.
        xi = np.clip(np.floor(px), 0, w - 1).astype(np.intp)
        yi = np.clip(np.floor(py), 0, h - 1).astype(np.intp)
        fx = np.clip(px - xi, 0, 1)[:, None]
        fy = np.clip(py - yi, 0, 1)[:, None]
        top = table[yi, xi] * (1 - fx) + table[yi, xi + 1] * fx
        bottom = table[yi + 1, xi] * (1 - fx) + table[yi + 1, xi + 1] * fx
        return top * (1 - fy) + bottom * fy

    sums = at(x1, y1) - at(x0, y1) - at(x1, y0) + at(x0, y0)
    area = np.maximum((x1 - x0) * (y1 - y0), 1.0)[:, None]
    mean = sums[:, :c] / area
    if not std:
        return mean, None
    # Unbiased, like torch.std over the window's cells.
    var = (sums[:, c:] - sums[:, :c] * mean) / np.maximum(area - 1, 1e-3)
    return mean, np.sqrt(np.maximum(var, 0.0))
