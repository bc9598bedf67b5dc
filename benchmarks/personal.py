"""Learning curves of personal models on simulated photographers (`python -m benchmarks personal`).

    python -m benchmarks personal                      # all tastes, 50/100/200/500 ratings, 5 seeds
    python -m benchmarks personal -- --seeds 2 --sizes 50,200
    python -m benchmarks.personal --cache-only         # only extract and cache the features
    python -m benchmarks personal -- --timing 500      # seconds to train on 500 rated photos

Photos: PARA images of `../shared/data/para-train` from the *validation* sessions only (the
session-hash split of `photod.training.datasets`; the shipped models never trained on them), at
most `--limit` of them. Their base-model features, base scores and a few image properties are
extracted once and cached under `.cache/personal/` (keyed by the base model's version).

Photographers (tastes), each a latent liking u per photo turned into 1-5 stars by the quantiles
photod's own stars use (10/20/35/25/10 %):

- crowd: u = the PARA human mean (the crowd's taste, no noise);
- content: u = z(mean) + 1.5 for photos in one k-means cluster of the backbone embeddings, - 1.5
  for another (think "animals over food");
- dark: u = z(mean) - 0.8 z(mean luminance) (low-key photos);
- close: u = z(mean) + 0.8 z(share of the frame covered by spectral-residual saliency): close
  crops, subjects that fill the frame;
- mono: u = z(mean) - 0.8 z(colourfulness, Hasler-Suesstrunk): muted and black-and-white photos;

plus rating noise N(0, 0.3) for every taste but the crowd's. Per seed the validation sessions are
split in half: the ratings are a random sample of the first half (shoots = sessions), the unseen
photos are all of the second half. Reported: SRCC against the photographer's stars on the unseen
photos of the shipped model, of the personal model (`photod.training.personal.fit_personal`, the
same recipe as `photod train --from-ratings`, ridge strength by inner CV), and of the model photod
would use (personal only when its own cross-validation says it wins clearly), mean and standard
deviation over seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / ".cache" / "personal"
SIZES = (50, 100, 200, 500)
TASTES = ("crowd", "content", "dark", "close", "mono")
NOISE = 0.3
log = logging.getLogger("photod")


# --- Image properties the tastes use -------------------------------------------------------------


def luminance(pixels: np.ndarray) -> float:
    rgb = pixels.astype(np.float64) / 255.0
    return float((rgb @ np.array([0.2126, 0.7152, 0.0722])).mean())


def colourfulness(pixels: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003): 0 for grey images, ~100+ for vivid ones."""
    r, g, b = (pixels[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def saliency_area(pixels: np.ndarray) -> float:
    """Share of the frame the spectral-residual saliency map (Hou & Zhang 2007) covers."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter, uniform_filter

    grey = np.asarray(Image.fromarray(pixels).convert("L").resize((64, 64)), np.float64)
    spectrum = np.fft.fft2(grey)
    log_amp = np.log(np.abs(spectrum) + 1e-9)
    residual = log_amp - uniform_filter(log_amp, 3)
    sal = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    sal = gaussian_filter(sal, 2.5)
    return float(np.mean(sal > sal.mean()))


# --- Cached features -----------------------------------------------------------------------------


def load_pool(base: str | None, limit: int, device: str = "cpu") -> dict[str, np.ndarray]:
    """Features, base scores, human means, sessions and image properties of the validation
    images (cached)."""
    from photod.models import get_model_spec, load_model
    from photod.scoring import DEFAULT_MODEL, fold_batchnorm
    from photod.training.datasets import para_dataset
    from photod.training.personal import base_features, standardiser

    base = base or DEFAULT_MODEL
    spec = get_model_spec(base)
    samples = para_dataset(split="val")[:limit]
    names = np.array([s.path.name for s in samples])
    cache = CACHE_DIR / f"{spec.version}-val-{len(samples)}.npz"
    if cache.exists():
        data = dict(np.load(cache))
        if data["names"].shape == names.shape and (data["names"] == names).all():
            return data
    net = load_model(base, device=device)
    if device == "cpu":
        net = fold_batchnorm(net)
    props = np.zeros((len(samples), 3))

    def on_pixels(i: int, pixels: np.ndarray) -> None:
        props[i] = luminance(pixels), colourfulness(pixels), saliency_area(pixels)

    done = [0]
    started = time.perf_counter()

    def progress(k: int) -> None:
        done[0] += k
        if done[0] % 320 < k:
            rate = done[0] / (time.perf_counter() - started)
            print(f"features: {done[0]}/{len(samples)} ({rate:.1f} images/s)", flush=True)

    paths = [s.path for s in samples]
    features, scores, ok = base_features(net, paths, device, 32, progress, on_pixels)
    if not ok.all():
        raise RuntimeError(f"{int((~ok).sum())} validation images did not decode")
    mean, std = standardiser(net.head, features)
    data = {
        "names": names,
        "sessions": np.array([s.group for s in samples]),
        "crowd": np.array([s.target for s in samples]),
        "features": features,
        "base": scores,
        "mean": mean,
        "std": std,
        "luminance": props[:, 0],
        "colourfulness": props[:, 1],
        "saliency": props[:, 2],
    }
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(cache)
    return data


# --- Simulated photographers ---------------------------------------------------------------------


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-12)


def content_clusters(
    embeddings: np.ndarray, k: int = 8, seed: int = 0
) -> tuple[np.ndarray, int, int]:
    """k-means labels of the embeddings and two clusters of 8-20 % of the photos: (liked,
    disliked)."""
    from sklearn.cluster import KMeans

    x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    labels = KMeans(k, n_init=4, random_state=seed).fit_predict(x)
    shares = np.bincount(labels, minlength=k) / len(labels)
    mid = [c for c in np.argsort(-shares) if 0.08 <= shares[c] <= 0.2] or list(np.argsort(-shares))
    return labels, int(mid[0]), int(mid[1] if len(mid) > 1 else mid[0])


def to_stars(u: np.ndarray) -> np.ndarray:
    """1-5 stars by the quantiles photod's stars use (10/20/35/25/10 %)."""
    from photod.stars import STAR_SHARES

    cuts = np.quantile(u, np.cumsum(STAR_SHARES)[:-1])
    return 1 + np.searchsorted(cuts, u, side="right")


def taste(name: str, pool: dict[str, np.ndarray], clusters: tuple, rng: np.random.Generator):
    """The stars a photographer of taste `name` gives every photo of the pool."""
    crowd = zscore(pool["crowd"])
    if name == "crowd":
        return to_stars(pool["crowd"])
    if name == "content":
        labels, liked, disliked = clusters
        u = crowd + 1.5 * (labels == liked) - 1.5 * (labels == disliked)
    elif name == "dark":
        u = crowd - 0.8 * zscore(pool["luminance"])
    elif name == "close":
        u = crowd + 0.8 * zscore(pool["saliency"])
    elif name == "mono":
        u = crowd - 0.8 * zscore(pool["colourfulness"])
    else:
        raise ValueError(name)
    return to_stars(u + rng.normal(0, NOISE, len(u)))


def run_one(pool, stars, n: int, seed: int, folds: int, repeats: int) -> dict[str, float]:
    from photod.training.metrics import srcc
    from photod.training.personal import decide, fit_personal

    rng = np.random.default_rng([seed, 1])
    sessions = np.unique(pool["sessions"])
    own = set(rng.permutation(sessions)[: len(sessions) // 2].tolist())
    in_own = np.array([s in own for s in pool["sessions"]])
    candidates = np.flatnonzero(in_own)
    rated = np.sort(rng.choice(candidates, min(n, len(candidates)), replace=False))
    unseen = np.flatnonzero(~in_own)
    started = time.perf_counter()
    fit = fit_personal(
        pool["features"][rated],
        pool["base"][rated],
        stars[rated],
        pool["sessions"][rated],
        pool["sessions"][rated],
        pool["mean"],
        pool["std"],
        folds=folds,
        repeats=repeats,
        seed=seed,
    )
    seconds = time.perf_counter() - started
    active, _ = decide(fit.cv)
    personal = pool["base"][unseen] + fit.correction(pool["features"][unseen])
    shipped_srcc = srcc(pool["base"][unseen], stars[unseen])
    personal_srcc = srcc(personal, stars[unseen])
    return {
        "shipped": shipped_srcc,
        "personal": personal_srcc,
        "used": personal_srcc if active else shipped_srcc,
        "active": float(active),
        "cv_gain": fit.cv["gain"],
        "seconds": seconds,
    }


def run(
    base: str | None = None,
    limit: int = 3300,
    sizes: tuple[int, ...] = SIZES,
    seeds: int = 5,
    tastes: tuple[str, ...] = TASTES,
    folds: int = 5,
    repeats: int = 3,
) -> dict[str, Any]:
    from photod.scoring import DEFAULT_MODEL

    pool = load_pool(base, limit)
    clusters = content_clusters(pool["features"][:, -1280:])
    result: dict[str, Any] = {
        "base": base or DEFAULT_MODEL,
        "photos": len(pool["names"]),
        "sessions": len(np.unique(pool["sessions"])),
        "clusters": {"liked": clusters[1], "disliked": clusters[2]},
        "curves": {},
    }
    for name in tastes:
        rows: dict[str, Any] = {}
        for n in sizes:
            runs = []
            for seed in range(seeds):
                stars = taste(name, pool, clusters, np.random.default_rng([seed, 7]))
                runs.append(run_one(pool, stars, n, seed, folds, repeats))
            rows[str(n)] = {
                key: {
                    "mean": round(float(np.mean([r[key] for r in runs])), 4),
                    "std": round(float(np.std([r[key] for r in runs])), 4),
                }
                for key in runs[0]
            }
            print(row_text(name, n, rows[str(n)]), flush=True)
        result["curves"][name] = rows
    return result


def row_text(name: str, n: int, row: dict[str, Any]) -> str:
    def cell(key: str) -> str:
        return f"{row[key]['mean']:.3f} ± {row[key]['std']:.3f}"

    gain = row["personal"]["mean"] - row["shipped"]["mean"]
    return (
        f"{name:<8} {n:>4}  shipped {cell('shipped')}  personal {cell('personal')}  "
        f"({gain:+.3f})  used {cell('used')}  active {row['active']['mean']:.0%}  "
        f"fit {row['seconds']['mean']:.1f} s"
    )


def table(result: dict[str, Any]) -> str:
    lines = [
        f"base {result['base']}, {result['photos']} PARA validation photos "
        f"({result['sessions']} sessions); SRCC vs the photographer's stars on unseen photos",
        "| taste | ratings | shipped | personal | gain | photod uses | personal active |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rows in result["curves"].items():
        for n, row in rows.items():
            gain = row["personal"]["mean"] - row["shipped"]["mean"]
            lines.append(
                f"| {name} | {n} | {row['shipped']['mean']:.3f} ± {row['shipped']['std']:.3f} "
                f"| {row['personal']['mean']:.3f} ± {row['personal']['std']:.3f} | {gain:+.3f} "
                f"| {row['used']['mean']:.3f} ± {row['used']['std']:.3f} "
                f"| {row['active']['mean']:.0%} |"
            )
    return "\n".join(lines)


def timing(workdir: Path, photos: int, size: tuple[int, int], base: str | None) -> dict[str, Any]:
    """Seconds for `train_personal` on `photos` camera-sized JPEGs rated in darktable sidecars,
    beside `photod score` of the same files in the same process (the machine's load hits both)."""
    import shutil
    import subprocess

    from benchmarks import inputs
    from photod.scoring import Scorer
    from photod.training.personal import train_personal

    folder = workdir / f"personal-timing-{photos}-{size[0]}x{size[1]}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    jpegs = inputs.make_jpeg_set(size)
    blank = folder / ".blank.jpg"
    blank.write_bytes(jpegs.data(0))
    templates = {}
    for stars in range(1, 6):
        templates[stars] = folder / f".rating-{stars}.xmp"
        subprocess.run(
            ["exiftool", "-q", f"-XMP-xmp:Rating={stars}", "-o", str(templates[stars]), str(blank)],
            check=True,
        )
    paths = []
    for i in range(photos):
        path = jpegs.write(i, folder)
        shutil.copy(templates[1 + (i % len(jpegs.encoded)) % 5], path.with_name(path.name + ".xmp"))
        paths.append(path)
    started = time.perf_counter()
    scored = sum(r.status == "ok" for r in Scorer(base, device="cpu").score_paths(paths))
    score_s = time.perf_counter() - started
    started = time.perf_counter()
    report = train_personal(folder, base=base, device="cpu", out_dir=workdir / "personal-out")
    train_s = time.perf_counter() - started
    shutil.rmtree(folder, ignore_errors=True)
    import os

    return {
        "photos": photos,
        "size": list(size),
        "scored": scored,
        "ratings": report["n_ratings"],
        "score_seconds": round(score_s, 1),
        "train_seconds": round(train_s, 1),
        "ratio": round(train_s / score_s, 2),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks personal", description=__doc__)
    p.add_argument("--base", default=None, help="base model (default: photod's default)")
    p.add_argument("--limit", type=int, default=3300, help="validation photos at most")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--tastes", default=",".join(TASTES))
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cache-only", action="store_true")
    p.add_argument(
        "--timing",
        type=int,
        default=0,
        metavar="N",
        help="instead: time `photod train --from-ratings` on N rated camera-sized JPEGs",
    )
    p.add_argument("--size", default="3000x2000", help="--timing: JPEG size WxH")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/photod-bench"))
    p.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.timing:
        w, h = (int(v) for v in args.size.split("x"))
        result = timing(args.workdir, args.timing, (w, h), args.base)
        print(
            f"train --from-ratings on {result['ratings']} rated {w}x{h} JPEGs: "
            f"{result['train_seconds']} s; photod score of the same files: "
            f"{result['score_seconds']} s (x{result['ratio']}); load {result['load_average']}"
        )
        return 0
    if args.cache_only:
        pool = load_pool(args.base, args.limit)
        print(f"cached {len(pool['names'])} photos")
        return 0
    result = run(
        args.base,
        args.limit,
        tuple(int(v) for v in args.sizes.split(",")),
        args.seeds,
        tuple(args.tastes.split(",")),
        args.folds,
        args.repeats,
    )
    print(table(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
