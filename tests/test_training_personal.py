"""Personal models from the user's own star ratings, the active-model switch and `photod models`.

Real JPEGs (and a real DNG) rated by an independent writer (exiftool writes xmp:Rating into the
photo, darktable-style NAME.EXT.xmp and Lightroom-style NAME.xmp sidecars, or EXIF Rating), one
rated by photod itself (must be ignored), unrated ones; the base model is a real ImageNet
backbone with a head saved to a real safetensors file and registered like a shipped model.
The selection logic is also checked on synthetic features where the right answer is known.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from photod.training.degrade import degrade
from tests import photos
from tests.training_models import TEST_BASE as BASE
from tests.training_models import register_test_head


def exiftool(*args: str) -> None:
    subprocess.run(["exiftool", "-q", "-overwrite_original", *args], check=True)


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A head-only model registered under BASE: ImageNet backbone + a seeded MLP head."""
    return register_test_head(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def rated_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 photos rated by 'the user' (exiftool): sharp originals 5★/4★, damaged copies 1★/2★,
    in two shoots; some ratings in darktable sidecars, some in EXIF only; one unrated photo."""
    folder = tmp_path_factory.mktemp("library")
    rng = np.random.default_rng(0)
    by_rating: dict[int, list[str]] = {1: [], 2: [], 4: [], 5: []}
    names = ("chelsea", "coffee", "astronaut", "rocket", "cat", "camera")
    for k, name in enumerate(names):
        shoot = folder / ("day1" if k % 2 else "day2")
        shoot.mkdir(exist_ok=True)
        pixels = photos.real_photo(name, scale=0.45)
        if pixels.shape[0] > 260:
            pixels = pixels[:260]
        variants = {
            5: pixels,
            4: pixels[:, ::-1].copy(),
            2: degrade(pixels, "blur", rng, 3.5),
            1: degrade(pixels, "underexposed", rng, 2.0),
        }
        for stars, variant in variants.items():
            path = shoot / f"{name}-{stars}.jpg"
            photos.write_jpeg(path, variant)
            by_rating[stars].append(str(path))
    for stars, files in by_rating.items():
        exiftool(f"-XMP-xmp:Rating={stars}", *files[:4])
        exiftool(f"-IFD0:Rating={stars}", files[4])  # EXIF only (a camera, Windows)
        # darktable: its sidecar says `stars`, an older embedded rating says otherwise.
        subprocess.run(
            ["exiftool", "-q", f"-XMP-xmp:Rating={stars}", "-o", files[5] + ".xmp", files[5]],
            check=True,
        )
        exiftool(f"-XMP-xmp:Rating={6 - stars}", files[5])
    photos.write_jpeg(folder / "day1" / "unrated.jpg", photos.real_photo("coffee", scale=0.3))
    return folder


def test_user_ratings_come_from_sidecars_xmp_and_exif_never_photod(tmp_path: Path) -> None:
    from photod.metadata import RatingInfo, write_rating
    from photod.training.ratings import read_user_stars

    pixels = photos.real_photo("chelsea", scale=0.25)

    def photo(name: str) -> str:
        return str(photos.write_jpeg(tmp_path / name, pixels))

    exiftool("-XMP-xmp:Rating=3", photo("xmp.jpg"))
    exiftool("-IFD0:Rating=2", photo("exif.jpg"))
    exiftool("-XMP-xmp:Rating=-1", photo("reject.jpg"))
    exiftool("-XMP-xmp:Rating=0", "-IFD0:Rating=4", photo("cleared.jpg"))  # XMP 0 decides
    exiftool("-IFD0:Rating=0", photo("exif-zero.jpg"))
    photo("dt.jpg")
    subprocess.run(["exiftool", "-q", "-XMP-xmp:Rating=5", "-o", f"{tmp_path}/dt.jpg.xmp",
                    f"{tmp_path}/dt.jpg"], check=True)  # fmt: skip
    exiftool("-XMP-xmp:Rating=2", f"{tmp_path}/dt.jpg")
    # A NAME.xmp beside a JPEG is a RAW's sidecar (Lightroom reads embedded XMP for JPEGs).
    photo("twin.jpg")
    blank = photo("blank-source.jpg")
    subprocess.run(["exiftool", "-q", "-XMP-xmp:Rating=5", "-o", f"{tmp_path}/twin.xmp", blank],
                   check=True)  # fmt: skip
    # A HEIC (never modified: sidecars only) with a Lightroom sidecar NAME.xmp.
    heic = photos.write_heic(tmp_path / "phone.heic", photos.real_photo("coffee", scale=0.2))
    subprocess.run(["exiftool", "-q", "-XMP-xmp:Rating=4", "-o", str(tmp_path / "phone.xmp"),
                    blank], check=True)  # fmt: skip
    ours = photo("ours.jpg")
    write_rating(
        Path(ours), RatingInfo(score=3.9, stars=5, model="photod-aesthetic-v1"), "embedded"
    )
    # photod rated it, then the user changed the rating in Lightroom (photod:Stars stays 5).
    changed = photo("changed.jpg")
    write_rating(
        Path(changed), RatingInfo(score=3.9, stars=5, model="photod-aesthetic-v1"), "embedded"
    )
    exiftool("-XMP-xmp:Rating=2", changed)

    def read(name: str):
        rating = read_user_stars(tmp_path / name)
        return None if rating is None else (rating.stars, rating.source)

    assert read("xmp.jpg") == (3, "embedded XMP")
    assert read("exif.jpg") == (2, "EXIF")
    assert read("reject.jpg") == (-1, "embedded XMP")
    assert read("cleared.jpg") is None
    assert read("exif-zero.jpg") is None
    assert read("dt.jpg") == (5, "darktable sidecar")
    assert read("twin.jpg") is None
    assert read(heic.name) == (4, "lightroom sidecar")
    assert read("ours.jpg") is None
    assert read("changed.jpg") == (2, "embedded XMP")
    photo("plain.jpg")
    assert read("plain.jpg") is None


def test_dataset_keeps_rejects_and_skips_unrated_and_photods(rated_folder: Path, tmp_path: Path):
    from photod.metadata import RatingInfo, write_rating
    from photod.training.datasets import user_ratings_dataset

    shutil.copytree(rated_folder, tmp_path / "lib")
    ours = tmp_path / "lib" / "day1" / "scored-by-photod.jpg"
    photos.write_jpeg(ours, photos.real_photo("chelsea", scale=0.3))
    write_rating(ours, RatingInfo(score=3.9, stars=5, model="photod-aesthetic-v1"), "embedded")
    read_back = subprocess.run(
        ["exiftool", "-s3", "-XMP-xmp:Rating", str(ours)], capture_output=True, text=True
    )
    assert read_back.stdout.strip() == "5"  # photod really wrote a rating there
    rejected = tmp_path / "lib" / "day1" / "rejected.jpg"
    photos.write_jpeg(rejected, photos.real_photo("rocket", scale=0.3))
    exiftool("-XMP-xmp:Rating=-1", str(rejected))
    samples = user_ratings_dataset(tmp_path / "lib")
    names = {s.path.name: s.target for s in samples}
    assert "scored-by-photod.jpg" not in names and "unrated.jpg" not in names
    assert names["rejected.jpg"] == -1.0
    assert len(names) == 25
    assert names["cat-5.jpg"] == 5.0 and names["cat-1.jpg"] == 1.0
    # The darktable sidecar wins over the embedded rating it contradicts.
    dt = [Path(p).name for p in map(str, (tmp_path / "lib").rglob("*.jpg.xmp"))]
    assert len(dt) == 4
    for sidecar in dt:
        photo_name = sidecar[: -len(".xmp")]
        assert names[photo_name] == float(photo_name.split("-")[1][0])
    assert {s.group for s in samples} == {str(tmp_path / "lib" / d) for d in ("day1", "day2")}


# --- The learning problem on synthetic features (the right answer is known) ---------------------


def synthetic(n: int, taste: float, seed: int = 0):
    """Features with low-dimensional structure (as MLSP features have), a base score that knows
    the crowd's taste, and stars = crowd + `taste` x a direction the base ignores, binned."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, 12))
    features = factors @ rng.normal(size=(12, 300)) + 0.3 * rng.normal(size=(n, 300))
    crowd = factors[:, 0] + 0.5 * factors[:, 1]
    base = 3.0 + 0.3 * (crowd + 0.4 * rng.normal(size=n))
    liking = crowd + taste * factors[:, 5] + 0.2 * rng.normal(size=n)
    stars = 1 + np.searchsorted(np.quantile(liking, [0.1, 0.3, 0.65, 0.9]), liking)
    shoots = np.array([f"shoot{i % 12}" for i in range(n)])
    return features, base, stars.astype(float), shoots


def fit(features, base, stars, shoots, **kw):
    from photod.training.personal import fit_personal

    mean, std = features.mean(0), features.std(0)
    return fit_personal(features, base, stars, shoots, shoots, mean, std, **kw)


def test_rank_targets_put_the_users_order_on_the_base_scale() -> None:
    from photod.training.personal import rank_targets

    rng = np.random.default_rng(0)
    base = 3.0 + 0.3 * rng.normal(size=200)
    agree = 1 + np.searchsorted(np.quantile(base, [0.1, 0.3, 0.65, 0.9]), base)
    targets = rank_targets(agree, base)
    # Same order as the stars, inside the base scores' range, close to the base where they agree.
    assert all(targets[agree == k].max() < targets[agree == k + 1].min() for k in range(1, 5))
    assert base.min() <= targets.min() and targets.max() <= base.max()
    assert np.corrcoef(targets, base)[0, 1] > 0.95
    # Keepers only (3-5 stars): the lowest class maps to the bottom of the base scale, not the
    # middle, so a generous photographer is not read as "everything is mediocre".
    keepers = np.clip(agree, 3, 5)
    assert rank_targets(keepers, base)[keepers == 3].max() < np.median(base)
    # A reject is below 1 star.
    with_reject = agree.copy()
    with_reject[:5] = -1
    t = rank_targets(with_reject, base)
    assert t[:5].max() < t[with_reject == 1].min()


def test_grouped_folds_keep_groups_whole_and_cover_every_rating() -> None:
    from photod.training.personal import grouped_folds

    groups = np.array([f"g{i % 7}" for i in range(60)])
    folds = grouped_folds(groups, 5, np.random.default_rng(0))
    assert sorted(np.concatenate(folds).tolist()) == list(range(60))
    for held in folds:
        inside = set(groups[held])
        rest = set(groups[np.setdiff1d(np.arange(60), held)])
        assert not inside & rest


def test_a_real_taste_is_learned_and_wins_clearly() -> None:
    from photod.training.personal import _srcc, decide

    features, base, stars, shoots = synthetic(700, taste=1.2)
    train = np.arange(200)
    test = np.arange(200, 700)
    result = fit(features[train], base[train], stars[train], shoots[train], repeats=2)
    assert result.cv["srcc"] > result.cv["base_srcc"] + 0.1
    assert decide(result.cv)[0]
    personal = base[test] + result.correction(features[test])
    assert _srcc(personal, stars[test]) > _srcc(base[test], stars[test]) + 0.1


def test_a_crowd_like_photographer_keeps_the_shipped_model() -> None:
    from photod.training.personal import _srcc, decide

    features, base, stars, shoots = synthetic(700, taste=0.0)
    result = fit(features[:200], base[:200], stars[:200], shoots[:200], repeats=2)
    assert not decide(result.cv)[0]
    personal = base[200:] + result.correction(features[200:])
    assert _srcc(personal, stars[200:]) >= _srcc(base[200:], stars[200:]) - 0.02


def test_the_decision_needs_a_clear_gain() -> None:
    from photod.training.personal import decide

    assert decide({"gain": 0.10, "gain_se": 0.03})[0]
    assert not decide({"gain": 0.10, "gain_se": 0.07})[0]  # lower bound below 0
    assert not decide({"gain": 0.015, "gain_se": 0.001})[0]  # clear but too small
    assert not decide({"gain": 0.03, "gain_se": 0.001}, min_gain=0.05)[0]


def test_the_stored_head_computes_the_fitted_correction(tmp_path: Path) -> None:
    import torch

    from photod.models.personal import load_personal_head
    from photod.training.export import write_model
    from photod.training.personal import correction_state

    features, base, stars, shoots = synthetic(150, taste=1.2)
    result = fit(features, base, stars, shoots, validate=False)
    assert np.abs(result.weight).sum() > 0
    state = correction_state(result, "personal-x")
    assert all(k.startswith("heads.personal-x.") for k in state)
    write_model(tmp_path / "personal-x.safetensors", state, {"base": BASE})
    head = load_personal_head(tmp_path / "personal-x.safetensors", "personal-x")
    with torch.inference_mode():
        got = head(torch.from_numpy(features).float()).numpy()
    np.testing.assert_allclose(got, result.correction(features), atol=2e-4)


def test_simulated_photographers_rate_like_photographers() -> None:
    """The benchmark's tastes: photod's star shares, the crowd's stars follow the human mean, a
    content taste moves the liked cluster up, and the benchmark's fit reports what it measured."""
    from benchmarks import personal as bench

    features, base, _, _ = synthetic(600, taste=0.0)
    rng = np.random.default_rng(3)
    pool = {
        "crowd": base + 0.1 * rng.normal(size=600),
        "luminance": rng.uniform(size=600),
        "saliency": rng.uniform(size=600),
        "colourfulness": rng.uniform(size=600),
        "features": features,
        "base": base,
        "sessions": np.array([f"s{i % 20}" for i in range(600)]),
        "mean": features.mean(0),
        "std": features.std(0),
    }
    labels = (features[:, 0] > np.quantile(features[:, 0], 0.85)).astype(int)
    clusters = (labels, 1, 0)
    crowd = bench.taste("crowd", pool, clusters, rng)
    shares = np.bincount(crowd, minlength=6)[1:] / 600
    np.testing.assert_allclose(shares, [0.10, 0.20, 0.35, 0.25, 0.10], atol=0.01)
    content = bench.taste("content", pool, clusters, np.random.default_rng(0))
    assert content[labels == 1].mean() > crowd[labels == 1].mean() + 0.5
    for name in ("dark", "close", "mono"):
        assert 0.3 < np.corrcoef(bench.taste(name, pool, clusters, rng), crowd)[0, 1] < 0.99
    result = bench.run_one(pool, content, 100, seed=0, folds=5, repeats=1)
    assert set(result) == {"shipped", "personal", "used", "active", "cv_gain", "seconds"}
    assert result["used"] == (result["personal"] if result["active"] else result["shipped"])


# --- End to end: `photod train --from-ratings` on real photos ------------------------------------


@pytest.mark.slow
def test_train_from_ratings_end_to_end(base_model, rated_folder, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from photod.cli import cli
    from photod.models import active_model_name, get_model_spec
    from photod.models.personal import load_personal_head
    from photod.paths import personal_models_dir
    from photod.scoring import DEFAULT_MODEL, Scorer

    runner = CliRunner()
    result = runner.invoke(
        cli, ["train", "--from-ratings", str(rated_folder), "--base", base_model, "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(
        result.output.strip().splitlines()[-1],
        parse_constant=lambda c: pytest.fail(f"not JSON: {c}"),
    )
    assert report["n_ratings"] == 24
    assert report["ratings"] == {"1": 6, "2": 6, "4": 6, "5": 6}
    assert report["grouped_by"] == "shot"  # two shoots are too few to hold out whole shoots
    # A random base head knows nothing of blur or darkness; the photographer's stars do.
    assert report["srcc"] > report["base_srcc"] + 0.2
    assert report["beats_base"] and report["active"]
    assert active_model_name() == "personal"

    weights = personal_models_dir() / "personal.safetensors"
    assert all(k.startswith("heads.personal.") for k in load_file(str(weights)))  # no backbone
    strict = {"parse_constant": lambda c: pytest.fail(f"not JSON: {c}")}  # no NaN / Infinity
    card = json.loads(weights.with_suffix(".json").read_text(), **strict)
    assert card["base"] == base_model and card["head"] == "personal"
    assert card["metrics"]["n_ratings"] == 24
    assert card["star_thresholds"] == get_model_spec(base_model).card["star_thresholds"]

    # The personal model = the base model's score + the stored correction, same embeddings.
    pixels = [photos.real_photo("chelsea", scale=0.5), photos.real_photo("rocket", scale=0.5)]
    personal_scores, personal_emb = Scorer("personal", device="cpu").score_pixels(pixels)
    base_net = Scorer(base_model, device="cpu")
    base_scores, base_emb = base_net.score_pixels(pixels)
    np.testing.assert_allclose(personal_emb, base_emb, atol=1e-4)
    import torch

    from photod.models.aesthetic import multilevel_features
    from photod.models.preprocess import to_tensor

    head = load_personal_head(weights, "personal")
    with torch.inference_mode():
        feats, _ = multilevel_features(base_net.net.backbone, to_tensor(pixels))
        correction = head(feats).numpy()
    np.testing.assert_allclose(personal_scores, base_scores + correction, atol=1e-3)
    assert np.abs(correction).max() > 1e-3

    # `photod score` uses the active personal model without being told.
    shot = photos.write_jpeg(tmp_path / "new.jpg", pixels[0])
    scored = runner.invoke(cli, ["score", str(shot), "--json", "--device", "cpu"])
    assert scored.exit_code == 0, scored.output
    row = json.loads(scored.output.strip().splitlines()[-1])
    assert row["model"] == card["version"]
    named = next(Scorer("personal", device="cpu").score_paths([shot]))
    assert row["score"] == pytest.approx(named.score, abs=1e-3)
    assert abs(row["score"] - next(base_net.score_paths([shot])).score) > 1e-3

    # So does the daemon (`photod watch`), run in this process so the test base model exists.
    watched = tmp_path / "import"
    watched.mkdir()
    photos.write_jpeg(watched / "arrived.jpg", pixels[1])
    caught = runner.invoke(
        cli,
        ["watch", str(watched), "--once", "--json", "--settle-seconds", "0.2", "--no-suggest",
         "--no-group", "--db", str(tmp_path / "index.db"), "--device", "cpu"],
    )  # fmt: skip
    assert caught.exit_code == 0, caught.output
    from photod.index import open_index

    db = open_index(tmp_path / "index.db")
    rows = list(db.query("SELECT model, score FROM photos"))
    db.close()
    assert [r["model"] for r in rows] == [card["version"]]
    named_watch = next(Scorer("personal", device="cpu").score_paths([watched / "arrived.jpg"]))
    assert rows[0]["score"] == pytest.approx(named_watch.score, abs=1e-3)

    # `photod models` shows both figures and the number of ratings.
    listed = runner.invoke(cli, ["models", "--json"])
    rows = {r["name"]: r for r in map(json.loads, listed.output.splitlines())}
    assert rows["personal"]["active"]
    summary = rows["personal"]["personal"]
    assert summary["n_ratings"] == 24 and summary["srcc"] == report["srcc"]
    assert summary["base_srcc"] == report["base_srcc"] and summary["base"] == base_model
    text = runner.invoke(cli, ["models"]).output
    line = next(x for x in text.splitlines() if " personal " in x)
    assert line.startswith("*") and "24 ratings" in line
    assert f"{report['srcc']:.3f}" in line and f"{report['base_srcc']:.3f}" in line

    # `--use default` reverts; unknown names fail; vanished weights fall back to the default.
    assert runner.invoke(cli, ["models", "--use", "default"]).exit_code == 0
    assert active_model_name() == DEFAULT_MODEL
    assert Scorer(device="cpu").model_name == DEFAULT_MODEL
    bad = runner.invoke(cli, ["models", "--use", "no-such-model"])
    assert bad.exit_code == 1 and "unknown model" in bad.output
    runner.invoke(cli, ["models", "--use", "personal"])
    assert Scorer(device="cpu").model_name == "personal"
    weights.unlink()
    assert active_model_name() == DEFAULT_MODEL


def test_too_few_ratings_is_a_clear_error(base_model, tmp_path: Path) -> None:
    from photod.cli import cli

    folder = tmp_path / "few"
    folder.mkdir()
    for i in range(3):
        path = photos.write_jpeg(folder / f"p{i}.jpg", photos.real_photo("coffee", scale=0.2))
        exiftool("-XMP-xmp:Rating=3", str(path))
    result = CliRunner().invoke(cli, ["train", "--from-ratings", str(folder), "--base", BASE])
    assert result.exit_code == 1
    assert "found 3 photos with your own star rating" in result.output
