"""Enhancers on synthetic and real photos: registry, presets, each enhancer's effect, geometry."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from photod.enhancers import (
    EnhanceContext,
    EnhancerError,
    get_enhancer,
    list_enhancers,
    load_presets,
    resolve_enhancers,
)
from photod.enhancers.color import LINEAR
from photod.enhancers.geometry import compose, extract, inscribed_box, iou
from tests import photos


def _params(name: str) -> dict:
    return load_presets()["params"][name]


def _linear_mean(image: np.ndarray) -> np.ndarray:
    return LINEAR[image].reshape(-1, 3).mean(axis=0)


# --- registry and presets ---------------------------------------------------------------------


def test_builtin_enhancers_are_registered_in_search_order():
    names = [spec.name for spec in list_enhancers()]
    assert names[:5] == ["exposure", "white_balance", "tone", "straighten", "crop"]
    assert get_enhancer("crop").kind == "geometry"
    assert get_enhancer("exposure").kind == "pixel"


def test_unknown_enhancer_suggests_close_name():
    with pytest.raises(EnhancerError, match="did you mean 'white_balance'"):
        get_enhancer("white_balanse")
    with pytest.raises(EnhancerError, match="did you mean 'exposure'"):
        resolve_enhancers("crop,exposre")


def test_resolve_enhancers_keeps_order_and_drops_duplicates():
    assert resolve_enhancers("crop, exposure,crop") == ["crop", "exposure"]
    assert resolve_enhancers(None) == load_presets()["order"]


def test_presets_are_data_and_override_the_default():
    fast = load_presets("fast")
    default = load_presets("default")
    assert fast["params"]["exposure"]["ev"] == [-1.0, -0.5, 0.5, 1.0]
    # Keys the preset does not set come from the default.
    assert fast["params"]["crop"]["min_area"] == default["params"]["crop"]["min_area"]
    # The opt-in edit-preference objective's parameters merge the same way.
    assert fast["edit_params"]["exposure"]["ev"] == [-1.5, -0.9, -0.4, 0.4, 0.9, 1.5]
    edit_crop = {"detect_borders": True, "min_area": 0.8}
    assert fast["edit_params"]["crop"] == default["edit_params"]["crop"] == edit_crop
    assert "refine" not in default["params"]["exposure"]
    with pytest.raises(EnhancerError, match="did you mean 'fast'"):
        load_presets("fats")


def test_third_party_enhancer_loads_from_entry_point(tmp_path, monkeypatch):
    """A real distribution on sys.path declaring the `photod.enhancers` entry-point group."""
    import photod.enhancers as registry

    package = tmp_path / "photod_plugin_demo.py"
    package.write_text(
        textwrap.dedent(
            '''
            """A plug-in enhancer for the test."""
            from photod.enhancers import Candidate, register_enhancer

            @register_enhancer("invert_demo", kind="pixel", description="demo")
            def invert_demo(image, context):
                return [Candidate("invert_demo", {}, pixel_op=lambda a: 255 - a)]
            '''
        )
    )
    dist = tmp_path / "photod_plugin_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: photod-plugin-demo\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text("[photod.enhancers]\ninvert_demo = photod_plugin_demo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from photod import plugins

    monkeypatch.setattr(plugins, "_loaded_groups", set())
    monkeypatch.delitem(registry._REGISTRY, "invert_demo", raising=False)
    try:
        spec = get_enhancer("invert_demo")
        image = photos.real_photo("coffee", scale=0.25)
        (candidate,) = spec.candidates(image, EnhanceContext())
        assert np.array_equal(candidate.apply(image), 255 - image)
    finally:
        registry._REGISTRY.pop("invert_demo", None)
        sys.modules.pop("photod_plugin_demo", None)


# --- exposure ---------------------------------------------------------------------------------


def test_exposure_shifts_linear_light_by_the_stops():
    image = photos.real_photo("coffee", scale=0.5)
    candidates = {
        c.params["ev"]: c
        for c in get_enhancer("exposure").candidates(
            image, EnhanceContext(params=_params("exposure"))
        )
    }
    assert set(candidates) >= {-1.0, 1.0, -1.5, 1.5}
    base = LINEAR[image]
    mid = (base > 0.05) & (base < 0.3)  # mid-tones: no clipping, no shoulder
    darker = LINEAR[candidates[-1.0].apply(image)]
    ratio = np.median(darker[mid] / base[mid])
    assert ratio == pytest.approx(0.5, abs=0.05)
    brighter = LINEAR[candidates[1.0].apply(image)]
    assert np.median(brighter[mid] / base[mid]) == pytest.approx(2.0, abs=0.15)
    assert candidates[1.0].crs == {"Exposure2012": 1.0}


def test_exposure_protects_highlights():
    image = photos.real_photo("astronaut", scale=0.5)
    (plus,) = [
        c for c in get_enhancer("exposure").candidates(image, EnhanceContext(params={"ev": [1.5]}))
    ]
    protected = plus.apply(image)
    naive = np.clip(LINEAR[image] * 2**1.5, 0, 1)
    naive_clipped = (naive >= 0.999).mean()
    protected_clipped = (protected >= 255).mean()
    assert naive_clipped > 0.05
    assert protected_clipped < naive_clipped / 3
    # The LUT keeps gradation: distinct, rising codes up to near-white inputs.
    from photod.enhancers.exposure import exposure_lut

    lut = exposure_lut(1.5)
    assert np.all(np.diff(lut[:231].astype(int)) >= 0)
    assert lut[230] < 255 and lut[200] < lut[230]


# --- white balance ----------------------------------------------------------------------------


def _cast(image: np.ndarray, gains=(1.35, 1.0, 0.7)) -> np.ndarray:
    from photod.enhancers.color import linear_to_srgb

    return np.round(linear_to_srgb(LINEAR[image] * np.array(gains)) * 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_grey_world_undoes_a_colour_cast(name):
    image = photos.real_photo(name, scale=0.5)
    cast = _cast(image)
    candidates = get_enhancer("white_balance").candidates(
        cast, EnhanceContext(params=_params("white_balance"))
    )
    (fix,) = [
        c
        for c in candidates
        if c.params.get("method") == "grey_world" and c.params["strength"] == 1.0
    ]
    fixed = fix.apply(cast)

    def imbalance(img):
        m = _linear_mean(img)
        return float(np.abs(np.log(m / m.mean())).max())

    # Gains are capped (MAX_GAIN_RATIO), so naturally warm photos are not fully neutralised.
    assert imbalance(fixed) < 0.7 * imbalance(cast)
    # The correction points back toward the original balance: red down, blue up.
    assert fix.params["gains"][0] < 1 < fix.params["gains"][2]
    assert fix.crs["IncrementalTemperature"] < 0


def test_white_balance_gains_are_capped_on_a_strongly_coloured_scene():
    from photod.enhancers.white_balance import MAX_GAIN_RATIO

    meadow = np.zeros((80, 120, 3), np.uint8)
    meadow[..., 1] = 170  # almost pure green: grey-world would ask for huge red/blue gains
    meadow[..., 0] = 12
    meadow[..., 2] = 20
    candidates = get_enhancer("white_balance").candidates(
        meadow, EnhanceContext(params=_params("white_balance"))
    )
    for c in candidates:
        gains = np.asarray(c.params["gains"])
        assert gains.max() / gains.min() <= MAX_GAIN_RATIO + 1e-6


def test_white_balance_on_a_neutral_grey_proposes_no_estimator_fix():
    grey = np.full((64, 96, 3), 118, np.uint8)
    candidates = get_enhancer("white_balance").candidates(
        grey, EnhanceContext(params=_params("white_balance"))
    )
    assert not [c for c in candidates if "method" in c.params]
    assert any("temperature" in c.params for c in candidates)


# --- tone -------------------------------------------------------------------------------------


def test_tone_contrast_and_saturation_change_what_they_say():
    image = photos.real_photo("chelsea", scale=0.5)
    candidates = get_enhancer("tone").candidates(image, EnhanceContext(params=_params("tone")))
    by_key = {(k, v): c for c in candidates for k, v in c.params.items()}
    grey = image.mean(axis=2)
    more = by_key[("contrast", 0.4)].apply(image).mean(axis=2)
    less = by_key[("contrast", -0.2)].apply(image).mean(axis=2)
    assert more.std() > grey.std() * 1.1
    assert less.std() < grey.std()

    def chroma(img):
        return float((img.max(axis=2).astype(int) - img.min(axis=2)).mean())

    assert chroma(by_key[("saturation", 0.2)].apply(image)) > chroma(image) * 1.1
    assert chroma(by_key[("saturation", -0.2)].apply(image)) < chroma(image) * 0.9
    assert chroma(by_key[("vibrance", 0.3)].apply(image)) > chroma(image)


# --- straighten -------------------------------------------------------------------------------


def _rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    """`image` turned counter-clockwise on screen by `degrees` (a tilted camera)."""
    import cv2

    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


def _horizon_scene(width: int = 480, height: int = 320) -> np.ndarray:
    """A sky over a sea: one strong horizon and some texture, like a seascape."""
    rng = np.random.default_rng(1)
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2] = (150, 190, 235)
    image[height // 2 :] = (30, 70, 110)
    noise = rng.integers(-12, 12, size=image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("tilt", [3.0, -2.0])
def test_straighten_detects_and_levels_a_tilted_horizon(tilt):
    from photod.enhancers.straighten import detect_tilt

    scene = _rotated(_horizon_scene(), tilt)
    detected = detect_tilt(scene)
    assert detected == pytest.approx(tilt, abs=0.5)
    candidates = get_enhancer("straighten").candidates(
        scene, EnhanceContext(params=_params("straighten"))
    )
    full = max(candidates, key=lambda c: abs(c.angle))
    levelled = full.apply(scene)
    after = detect_tilt(levelled)
    assert after is None or abs(after) < 0.5
    # The crop has the photo's aspect ratio and no empty corners.
    h, w = levelled.shape[:2]
    assert w / h == pytest.approx(480 / 320, rel=0.02)


def test_straighten_proposes_nothing_without_lines():
    image = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    assert get_enhancer("straighten").candidates(image, EnhanceContext()) == []


def test_straighten_on_a_real_photo_returns_valid_candidates():
    image = photos.real_photo("rocket", scale=0.6)
    for candidate in get_enhancer("straighten").candidates(image, EnhanceContext()):
        assert abs(candidate.angle) <= 8.0
        left, top, right, bottom = candidate.crop
        assert 0 < left < right < 1 and 0 < top < bottom < 1


# --- crop -------------------------------------------------------------------------------------


def _crop_context(image: np.ndarray) -> EnhanceContext:
    from photod.enhancers.crop import detect_faces, saliency_map

    return EnhanceContext(
        params=_params("crop"), faces=detect_faces(image), saliency=saliency_map(image)
    )


def test_crop_candidates_respect_size_aspect_and_bounds():
    image = photos.real_photo("coffee", scale=0.8)
    h, w = image.shape[:2]
    params = _params("crop")
    candidates = get_enhancer("crop").candidates(image, _crop_context(image))
    assert len(candidates) >= 40
    aspects = {c.params["aspect"] for c in candidates}
    assert {"original", "4:3", "1:1", "16:9"} <= aspects
    ratios = {"3:2": 1.5, "4:3": 4 / 3, "1:1": 1.0, "16:9": 16 / 9, "4:5": 0.8, "original": w / h}
    for c in candidates:
        left, top, right, bottom = c.crop
        assert 0 <= left < right <= 1 + 1e-9 and 0 <= top < bottom <= 1 + 1e-9
        assert (right - left) * (bottom - top) >= params["min_area"] - 1e-9
        assert min(right - left, bottom - top) >= params["min_side"] - 1e-9
        if c.params["aspect"] in ratios:
            px_ratio = (right - left) * w / ((bottom - top) * h)
            assert px_ratio == pytest.approx(ratios[c.params["aspect"]], rel=1e-3)
        assert c.apply(image).shape[0] >= 0.6 * h - 1


def test_crop_never_cuts_through_a_face():
    from photod.enhancers.crop import detect_faces

    image = photos.real_photo("astronaut", scale=0.8)
    faces = detect_faces(image)
    assert faces, "the Haar cascade finds the astronaut's face"
    candidates = get_enhancer("crop").candidates(image, _crop_context(image))
    assert candidates
    for c in candidates:
        for fl, ft, fr, fb in faces:
            inside = c.crop[0] <= fl and c.crop[1] <= ft and c.crop[2] >= fr and c.crop[3] >= fb
            assert inside, f"{c.params} cuts the face {faces}"


def test_crop_candidates_include_one_removing_a_flat_margin():
    photo = photos.real_photo("chelsea", scale=0.8)
    h, w = photo.shape[:2]
    pad_y, pad_x = h // 6, w // 6
    padded = np.full((h + 2 * pad_y, w + 2 * pad_x, 3), 128, np.uint8)
    padded[pad_y : pad_y + h, pad_x : pad_x + w] = photo
    H, W = padded.shape[:2]
    truth = (pad_x / W, pad_y / H, (pad_x + w) / W, (pad_y + h) / H)
    candidates = get_enhancer("crop").candidates(padded, _crop_context(padded))
    best = max(iou(c.crop, truth) for c in candidates)
    assert best > 0.85


# --- geometry ---------------------------------------------------------------------------------


def test_extract_without_angle_is_a_slice():
    image = photos.real_photo("coffee", scale=0.5)
    h, w = image.shape[:2]
    box = (0.1, 0.2, 0.7, 0.9)
    out = extract(image, box)
    assert np.array_equal(
        out, image[round(0.2 * h) : round(0.9 * h), round(0.1 * w) : round(0.7 * w)]
    )


def test_inscribed_box_leaves_no_empty_corners():
    white = np.full((300, 450, 3), 255, np.uint8)
    for angle in (5.0, -7.0):
        box = inscribed_box(450, 300, angle)
        import cv2

        # A border of black: any sample outside the image would show up dark.
        framed = cv2.copyMakeBorder(white, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        inner = (
            (box[0] * 450 + 2) / 454,
            (box[1] * 300 + 2) / 304,
            (box[2] * 450 + 2) / 454,
            (box[3] * 300 + 2) / 304,
        )
        out = extract(framed, inner, angle)
        assert out[1:-1, 1:-1].min() > 200


def test_compose_matches_two_extracts():
    image = photos.real_photo("astronaut", scale=0.6)
    h, w = image.shape[:2]
    outer, angle = inscribed_box(w, h, 4.0), 4.0
    inner = (0.2, 0.1, 0.9, 0.8)
    twice = extract(extract(image, outer, angle), inner)
    once = extract(image, compose(outer, angle, inner, w, h), angle)
    assert abs(twice.shape[0] - once.shape[0]) <= 2 and abs(twice.shape[1] - once.shape[1]) <= 2
    hh, ww = min(twice.shape[0], once.shape[0]), min(twice.shape[1], once.shape[1])
    diff = np.abs(twice[:hh, :ww].astype(int) - once[:hh, :ww].astype(int))
    assert np.median(diff) < 12
