"""Personal models: the shipped model's score plus a correction learned from the user's own stars.

`photod train --from-ratings DIR`, for the tens to hundreds of ratings a photographer has:

1. Ratings: what the user set in darktable, Lightroom, the camera or Windows
   (`photod.training.ratings`), never photod's own; 1-5 stars, rejects (-1) as the lowest
   class, unrated photos (0 or none) left out.
2. Features: the base model's own MLSP features and score of every rated photo, one pass.
3. The model: personal(x) = base(x) + c(x), where c is linear in the same features, standardised
   with the base head's own statistics. Only c is learned, so with no evidence (c = 0) the
   personal model *is* the shipped one, and a ridge penalty shrinks c towards 0 the fewer
   ratings there are.
4. The stars' scale: stars are ordinal, the score is on PARA's 1-5 scale, and the two are never
   compared directly. Each star class (reject < 1 < ... < 5) is mapped to the base model's score
   at that class's mid-rank among the user's photos (the quantile of the base scores at the
   class's share of the ratings): the user's ranking, expressed on the spread the shipped model
   has on these same photos. A photographer who agrees with the crowd thus gives targets close
   to the base scores, and c stays near 0; one who only rates keepers 3-5 is not read as
   "everything is mediocre".
5. The loss ranks pairs: every pair of photos the user rated differently, within and across
   shoots (folders), asks that the score difference match the difference of the mapped targets
   (least-squares ranking, RankRLS; Pahikkala et al. 2009). Pairs rated alike impose nothing.
   With a linear c it has a closed form, solved on the rated photos' top principal components
   (computed without labels): one eigendecomposition per split serves every ridge strength.
6. The ridge strength is chosen by an inner grouped k-fold (concordance of held-out pairs), among
   a grid that includes "no correction".
7. Selection: repeated grouped k-fold over the ratings (folds hold out whole shoots when there
   are enough, else whole shots, so a RAW and its JPEG never straddle a split), the inner choice
   of the ridge strength redone inside every fold. Both models' held-out SRCC per fold; the gain's
   uncertainty is the Nadeau-Bengio corrected standard error of repeated cross-validation. The
   personal model becomes active only when it wins clearly: a mean gain of at least `min_gain`
   and a one-sided 95 % lower bound above 0. It is saved either way; `photod models` shows both
   figures and the number of ratings; `photod models --use default` reverts.
8. Stars of the personal model: the base model's thresholds. The personal score stays on the base
   model's scale (its mean over the user's photos is kept), so a star means what it meant with
   the shipped model; the photos are reordered, not re-spread.

The saved file holds only the correction, a `LinearHead` stored as `heads.<name>.*` (the multi-head
layout of `models/aesthetic.py`); its card names the base model and lists the head.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from photod.errors import ModelError, PhotodError

log = logging.getLogger("photod")

DEFAULT_NAME = "personal"
# Ridge strengths relative to the data's own scale (`_ridge_scale`); "no correction" is always a
# candidate too.
ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
NO_CORRECTION = math.inf
Z_ONE_SIDED_95 = 1.645
MIN_GAIN = 0.02
# Above this many ratings the dual solve (n^3) gets slow; a seeded sample of this size is used.
MAX_RATINGS = 3000


class NotEnoughRatingsError(PhotodError):
    code = "not_enough_ratings"


# --- Features --------------------------------------------------------------------------------------


def base_features(
    net: Any,
    paths: Sequence[Path],
    device: str = "cpu",
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
    on_pixels: Callable[[int, np.ndarray], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MLSP features [N, D], base scores [N], ok mask [N]) of the photos through `net`.

    Decoding runs in two threads, a batch ahead of the model; a photo that does not decode is
    logged and masked out. `on_pixels(i, pixels)` sees each decoded 224 x 224 image.
    """
    import torch

    from photod.decode import decode_image
    from photod.models.aesthetic import multilevel_features
    from photod.models.preprocess import resize_for_model, to_tensor

    def load(path: Path) -> np.ndarray | None:
        try:
            return resize_for_model(decode_image(path, min_side=224).pixels)
        except PhotodError as exc:
            log.warning("skipping %s", exc)
            return None

    n = len(paths)
    features: np.ndarray | None = None
    scores = np.zeros(n, np.float32)
    ok = np.zeros(n, bool)
    dtype = next(net.parameters()).dtype
    batches = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    with ThreadPoolExecutor(2) as pool, torch.inference_mode():
        pending = [pool.submit(lambda b: [load(paths[i]) for i in b], b) for b in batches[:2]]
        for k, rows in enumerate(batches):
            images = pending[k].result()
            if k + 2 < len(batches):
                pending.append(pool.submit(lambda b: [load(paths[i]) for i in b], batches[k + 2]))
            good = [(i, im) for i, im in zip(rows, images, strict=True) if im is not None]
            if good:
                if on_pixels:
                    for i, im in good:
                        on_pixels(i, im)
                x = to_tensor([im for _, im in good]).to(device, dtype=dtype)
                f, _ = multilevel_features(net.backbone, x)
                s = net.head(f.to(dtype)).float().cpu().numpy()
                f = f.float().cpu().numpy()
                if features is None:
                    features = np.zeros((n, f.shape[1]), np.float32)
                idx = [i for i, _ in good]
                features[idx], scores[idx], ok[idx] = f, s, True
            if progress:
                progress(len(rows))
    if features is None:
        features = np.zeros((n, 0), np.float32)
    return features, scores, ok


def standardiser(head: Any, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) that standardise the features for the correction: the base head's own buffers
    when it has them (the same inputs the shipped head sees), else the rated photos' statistics."""
    mean = getattr(head, "feature_mean", None)
    std = getattr(head, "feature_std", None)
    if mean is not None and std is not None and mean.numel() == features.shape[1]:
        mean_np = mean.detach().float().cpu().numpy().astype(np.float64)
        std_np = std.detach().float().cpu().numpy().astype(np.float64)
    else:
        mean_np = features.mean(0).astype(np.float64)
        std_np = features.std(0).astype(np.float64)
    floor = max(float(np.median(std_np)) * 0.05, 1e-6)  # a near-constant feature must not explode
    return mean_np, np.maximum(std_np, floor)


# --- The learning problem ------------------------------------------------------------------------


def rank_targets(stars: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Each star class -> the base score quantile at the class's mid-rank among these photos."""
    stars = np.asarray(stars)
    targets = np.zeros(len(stars), np.float64)
    below = 0
    for value in np.unique(stars):  # ascending: reject (-1) first
        members = stars == value
        count = int(members.sum())
        targets[members] = np.quantile(base, (below + count / 2) / len(stars))
        below += count
    return targets


def pair_laplacian(
    stars: np.ndarray, shoots: np.ndarray | None = None, within_shoot: float = 1.0
) -> np.ndarray:
    """Laplacian of the graph of differently rated pairs (pairs within a shoot weighted
    `within_shoot`): e' L e is the sum over those pairs of (e_i - e_j)^2."""
    adjacency = (stars[:, None] != stars[None, :]).astype(np.float64)
    if shoots is not None and within_shoot != 1.0:
        adjacency *= np.where(shoots[:, None] == shoots[None, :], within_shoot, 1.0)
    return np.diag(adjacency.sum(1)) - adjacency


# The correction is fitted in the span of the rated photos' top principal components (of the
# standardised features, computed without labels): with at most a few hundred ratings a ridge
# penalty leaves the other directions at ~0 anyway, and one eigendecomposition then serves every
# ridge strength.
COMPONENTS = 128


@dataclass
class Problem:
    """Everything the fits need, computed once: the rated photos in principal coordinates."""

    coords: np.ndarray  # [N, R] standardised features projected on the top R components
    base: np.ndarray  # [N] base scores
    stars: np.ndarray  # [N] -1, 1..5
    shoots: np.ndarray  # [N] shoot (folder) ids
    groups: np.ndarray  # [N] split groups (shoot or shot)
    within_shoot: float = 1.0


def principal_coords(z: np.ndarray, components: int = COMPONENTS) -> tuple[np.ndarray, np.ndarray]:
    """(coords [N, R], basis [D, R]) of the centred rows of z on their top R components."""
    centred = z - z.mean(0)
    gram = centred @ centred.T
    values, vectors = np.linalg.eigh(gram)
    keep = np.argsort(values)[::-1][:components]
    keep = keep[values[keep] > values.max() * 1e-9]
    singular = np.sqrt(values[keep])
    basis = centred.T @ (vectors[:, keep] / singular)
    return vectors[:, keep] * singular, basis


@dataclass
class Fit:
    """A fitted correction: coefficients on the principal coordinates, intercept, strength."""

    coef: np.ndarray
    intercept: float
    alpha: float

    def correction(self, problem: Problem, rows: np.ndarray) -> np.ndarray:
        if not len(self.coef):
            return np.zeros(len(rows))
        return problem.coords[rows] @ self.coef + self.intercept


class _Solver:
    """The training part of one split, factored once; `fit(alpha)` is then nearly free."""

    def __init__(self, problem: Problem, rows: np.ndarray) -> None:
        stars = problem.stars[rows]
        base = problem.base[rows]
        self.residual = rank_targets(stars, base) - base
        laplacian = pair_laplacian(stars, problem.shoots[rows], problem.within_shoot)
        coords = problem.coords[rows]
        self.coords = coords
        lp = laplacian @ coords
        gram = coords.T @ lp
        self.values, self.vectors = np.linalg.eigh(gram)
        self.projected = self.vectors.T @ (lp.T @ self.residual)
        # lambda = alpha * tr(X'LX) / n: proportional to the data's own scale and to n, as a ridge
        # penalty on a per-photo loss would be, so alpha means the same for 50 or 500 ratings.
        self.scale = float(np.trace(gram)) / max(1, len(rows))

    def fit(self, alpha: float) -> Fit:
        if not math.isfinite(alpha) or self.scale <= 0:
            return Fit(np.zeros(0), 0.0, NO_CORRECTION)
        coef = self.vectors @ (self.projected / (self.values + alpha * self.scale))
        intercept = float(np.mean(self.residual - self.coords @ coef))
        return Fit(coef, intercept, alpha)


def concordance(pred: np.ndarray, stars: np.ndarray) -> tuple[float, int]:
    """(correctly ordered pairs, pairs) over the pairs with different stars; prediction ties 1/2."""
    ds = np.sign(stars[:, None] - stars[None, :])
    dp = np.sign(pred[:, None] - pred[None, :])
    upper = np.triu(ds != 0, 1)
    agree = (ds * dp)[upper]
    return float(np.sum(agree > 0) + 0.5 * np.sum(agree == 0)), int(upper.sum())


def grouped_folds(groups: np.ndarray, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`k` folds of row indices, whole groups per fold, sizes balanced (largest groups first)."""
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = rng.permutation(len(names))
    order = order[np.argsort(-counts[order], kind="stable")]
    fold_of = np.zeros(len(names), np.int64)
    sizes = np.zeros(k, np.int64)
    for g in order:
        f = int(np.argmin(sizes))
        fold_of[g] = f
        sizes[f] += counts[g]
    return [np.flatnonzero(fold_of[inverse] == f) for f in range(k) if sizes[f]]


def choose_alpha(
    problem: Problem, rows: np.ndarray, folds: int, rng: np.random.Generator
) -> tuple[float, dict[str, float]]:
    """The ridge strength (or none) with the best held-out pair concordance in an inner grouped
    k-fold over `rows`; ties go to the stronger shrinkage."""
    candidates = (NO_CORRECTION, *sorted(ALPHAS, reverse=True))
    correct = dict.fromkeys(candidates, 0.0)
    total = 0
    groups = problem.groups[rows]
    k = min(folds, len(np.unique(groups)))
    if k < 2:
        return NO_CORRECTION, {}
    for held in grouped_folds(groups, k, rng):
        train = np.setdiff1d(np.arange(len(rows)), held)
        if len(np.unique(problem.stars[rows[train]])) < 2:
            continue
        solver = _Solver(problem, rows[train])
        test = rows[held]
        base = problem.base[test]
        stars = problem.stars[test]
        for alpha in candidates:
            pred = base + solver.fit(alpha).correction(problem, test)
            c, t = concordance(pred, stars)
            correct[alpha] += c
        total += concordance(base, stars)[1]
    if total == 0:
        return NO_CORRECTION, {}
    scores = {a: correct[a] / total for a in candidates}
    best = max(candidates, key=lambda a: scores[a])  # first maximum: the strongest shrinkage
    return best, {
        ("none" if a == NO_CORRECTION else str(a)): round(s, 4) for a, s in scores.items()
    }


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank (as Spearman's correlation uses them)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def _srcc(pred: np.ndarray, target: np.ndarray) -> float:
    """Spearman's rank correlation with ties (numpy; importing scipy.stats costs seconds)."""
    if np.ptp(target) == 0 or np.ptp(pred) == 0:
        return float("nan")
    return float(np.corrcoef(average_ranks(pred), average_ranks(target))[0, 1])


def cross_validate(
    problem: Problem, folds: int = 5, repeats: int = 3, seed: int = 0
) -> dict[str, Any]:
    """Repeated grouped k-fold of the whole recipe (inner choice of alpha included): per-fold
    held-out SRCC of base and personal, means and Nadeau-Bengio corrected standard errors."""
    n = len(problem.stars)
    k = min(folds, len(np.unique(problem.groups)))
    if k < 2:
        raise NotEnoughRatingsError("the ratings come from a single shot; nothing to hold out")
    rows_all = np.arange(n)
    per_fold: list[dict[str, float]] = []
    for repeat in range(repeats):
        rng = np.random.default_rng([seed, repeat])
        for held in grouped_folds(problem.groups, k, rng):
            train = np.setdiff1d(rows_all, held)
            if len(np.unique(problem.stars[train])) < 2:
                continue
            alpha, _ = choose_alpha(problem, train, folds, rng)
            fit = _Solver(problem, train).fit(alpha)
            pred = problem.base[held] + fit.correction(problem, held)
            base_srcc = _srcc(problem.base[held], problem.stars[held])
            personal_srcc = _srcc(pred, problem.stars[held])
            if math.isnan(base_srcc) or math.isnan(personal_srcc):
                continue  # one star value only in this fold: no ranking to measure
            per_fold.append(
                {
                    "n_train": len(train),
                    "n_test": len(held),
                    "alpha": alpha,
                    "base_srcc": base_srcc,
                    "srcc": personal_srcc,
                }
            )
    if not per_fold:
        raise NotEnoughRatingsError("no held-out fold had two different ratings")
    base_values = np.array([f["base_srcc"] for f in per_fold])
    values = np.array([f["srcc"] for f in per_fold])
    ratio = float(np.mean([f["n_test"] / f["n_train"] for f in per_fold]))

    def corrected_se(x: np.ndarray) -> float:
        if len(x) < 2:
            return float("inf")
        return float(math.sqrt((1 / len(x) + ratio) * np.var(x, ddof=1)))

    gain = values - base_values
    return {
        "folds": k,
        "repeats": repeats,
        "n_folds_measured": len(per_fold),
        "srcc": float(values.mean()),
        "srcc_se": corrected_se(values),
        "base_srcc": float(base_values.mean()),
        "base_srcc_se": corrected_se(base_values),
        "gain": float(gain.mean()),
        "gain_se": corrected_se(gain),
        "alphas": [f["alpha"] for f in per_fold],
    }


def decide(cv: dict[str, Any], min_gain: float = MIN_GAIN) -> tuple[bool, str]:
    """Whether the personal model wins clearly, and why (or why not)."""
    low = cv["gain"] - Z_ONE_SIDED_95 * cv["gain_se"]
    shown = f"gain {cv['gain']:+.3f} ± {cv['gain_se']:.3f}"
    if cv["gain"] < min_gain:
        return False, f"{shown}: below the required {min_gain:+.3f}"
    if low <= 0:
        return False, f"{shown}: not clear (95 % lower bound {low:+.3f} <= 0)"
    return True, f"{shown}: 95 % lower bound {low:+.3f} > 0"


@dataclass
class PersonalFit:
    """The final correction in feature space and the selection report."""

    weight: np.ndarray  # [D], on standardised features
    intercept: float
    alpha: float
    mean: np.ndarray
    std: np.ndarray
    cv: dict[str, Any]
    inner: dict[str, float] = field(default_factory=dict)

    def correction(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.std) @ self.weight + self.intercept


def split_groups(
    paths: Sequence[Path], shoots: Sequence[str], folds: int
) -> tuple[np.ndarray, str]:
    """(group per photo, 'shoot' or 'shot'): whole shoots are held out when there are at least
    `folds` of them and none holds more than 40 % of the ratings, else whole shots."""
    from photod.training.ratings import shot_key

    names, counts = np.unique(np.asarray(shoots), return_counts=True)
    if len(names) >= folds and counts.max() <= 0.4 * len(shoots):
        return np.asarray(shoots), "shoot"
    return np.asarray([shot_key(p) for p in paths]), "shot"


def fit_personal(
    features: np.ndarray,
    base: np.ndarray,
    stars: np.ndarray,
    shoots: np.ndarray,
    groups: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    folds: int = 5,
    repeats: int = 3,
    seed: int = 0,
    within_shoot: float = 1.0,
    validate: bool = True,
) -> PersonalFit:
    """Cross-validate the recipe (unless `validate` is False), then fit it on every rating."""
    from threadpoolctl import threadpool_limits

    # Hundreds of small solves: one BLAS thread each is fastest, and on a busy machine threads
    # of a big pool waiting for each other made it ten times slower (measured).
    with threadpool_limits(1):
        return _fit_personal(
            features,
            base,
            stars,
            shoots,
            groups,
            mean,
            std,
            folds,
            repeats,
            seed,
            within_shoot,
            validate,
        )


def _fit_personal(
    features: np.ndarray,
    base: np.ndarray,
    stars: np.ndarray,
    shoots: np.ndarray,
    groups: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    folds: int,
    repeats: int,
    seed: int,
    within_shoot: float,
    validate: bool,
) -> PersonalFit:
    z = (features.astype(np.float64) - mean) / std
    coords, basis = principal_coords(z)
    problem = Problem(
        coords,
        base.astype(np.float64),
        np.asarray(stars, np.float64),
        np.asarray(shoots),
        np.asarray(groups),
        within_shoot,
    )
    cv = cross_validate(problem, folds, repeats, seed) if validate else {}
    rows = np.arange(len(stars))
    alpha, inner = choose_alpha(problem, rows, folds, np.random.default_rng([seed, 999]))
    fit = _Solver(problem, rows).fit(alpha)
    if len(fit.coef):
        weight = basis @ fit.coef
        intercept = fit.intercept - float(z.mean(0) @ weight)  # the coords were centred
    else:
        weight, intercept = np.zeros(z.shape[1]), 0.0
    return PersonalFit(weight, intercept, alpha, mean, std, cv, inner)


# --- The command ----------------------------------------------------------------------------------


def correction_head(fit: PersonalFit) -> Any:
    """The correction as a `LinearHead` over the base model's MLSP features (exact, fp32)."""
    import torch

    from photod.models.aesthetic import LinearHead

    head = LinearHead(in_dim=len(fit.weight))
    with torch.no_grad():
        head.feature_mean.copy_(torch.from_numpy(fit.mean.astype(np.float32)))
        head.feature_std.copy_(torch.from_numpy(fit.std.astype(np.float32)))
        head.linear.weight.copy_(torch.from_numpy(fit.weight.astype(np.float32))[None, :])
        head.linear.bias.fill_(float(fit.intercept))
    return head.eval()


def correction_state(fit: PersonalFit, name: str) -> dict[str, Any]:
    """The personal file's tensors: only the correction head, as `heads.<name>.*` (the multi-head
    layout of models/aesthetic.py), in fp32 (it is 2,848 numbers)."""
    head = correction_head(fit)
    return {f"heads.{name}.{k}": v.detach().contiguous() for k, v in head.state_dict().items()}


def train_personal(
    folder: Path,
    base: str | None = None,
    folds: int = 5,
    repeats: int = 3,
    seed: int = 0,
    device: str = "auto",
    name: str = DEFAULT_NAME,
    min_photos: int = 20,
    min_gain: float = MIN_GAIN,
    within_shoot: float = 1.0,
    out_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    on_count: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train a personal correction from the ratings under `folder`; returns the report."""
    from photod.models import get_model_spec, load_model, select_model
    from photod.models.registry import selected_model_name
    from photod.paths import personal_models_dir
    from photod.scoring import DEFAULT_MODEL, fold_batchnorm, resolve_device
    from photod.stars import FALLBACK_THRESHOLDS
    from photod.training.datasets import user_ratings_dataset
    from photod.training.export import write_model

    if not name.startswith("personal"):
        raise ModelError(f"a personal model's name must start with 'personal', got {name!r}")
    base = base or DEFAULT_MODEL
    base_spec = get_model_spec(base)
    if base_spec.card.get("base"):
        raise ModelError(f"{base} is itself a personal model; train on top of a shipped model")
    samples = user_ratings_dataset(Path(folder))
    if on_count:
        on_count(len(samples))
    if len(samples) < min_photos:
        raise NotEnoughRatingsError(
            f"found {len(samples)} photos with your own star rating; need at least {min_photos}",
            str(folder),
        )
    if len(samples) > MAX_RATINGS:
        keep = np.sort(np.random.default_rng(seed).choice(len(samples), MAX_RATINGS, False))
        log.info("using %d of your %d ratings", MAX_RATINGS, len(samples))
        samples = [samples[i] for i in keep]
    device = resolve_device(device)
    net = load_model(base, device=device)
    if device == "cpu":
        net = fold_batchnorm(net)
    if not hasattr(net, "head") or not hasattr(net, "backbone"):
        raise ModelError(f"{base} is not a backbone + MLSP head model; no personal head fits it")
    paths = [s.path for s in samples]
    features, base_scores, ok = base_features(net, paths, device, progress=progress)
    samples = [s for s, good in zip(samples, ok, strict=True) if good]
    features, base_scores = features[ok], base_scores[ok]
    stars = np.array([s.target for s in samples])
    if len(np.unique(stars)) < 2:
        raise NotEnoughRatingsError("your ratings are all the same star value", str(folder))
    shoots = np.array([s.group for s in samples])
    groups, grouped_by = split_groups([s.path for s in samples], shoots, folds)
    mean, std = standardiser(net.head, features)
    fit = fit_personal(
        features, base_scores, stars, shoots, groups, mean, std, folds, repeats, seed, within_shoot
    )
    active_ok, why = decide(fit.cv, min_gain)
    cv = fit.cv
    counts = {str(int(v)): int((stars == v).sum()) for v in np.unique(stars)}
    report: dict[str, Any] = {
        "name": name,
        "base": base,
        "n_ratings": len(samples),
        "ratings": counts,
        "grouped_by": grouped_by,
        "folds": cv["folds"],
        "repeats": cv["repeats"],
        "base_srcc": round(cv["base_srcc"], 4),
        "base_srcc_se": round(cv["base_srcc_se"], 4),
        "srcc": round(cv["srcc"], 4),
        "srcc_se": round(cv["srcc_se"], 4),
        "gain": round(cv["gain"], 4),
        "gain_se": round(cv["gain_se"], 4),
        "alpha": fit.alpha if math.isfinite(fit.alpha) else None,  # None: no correction
        "beats_base": active_ok,
        "decision": why,
    }

    folder_out = out_dir or personal_models_dir()
    folder_out.mkdir(parents=True, exist_ok=True)
    weights = folder_out / f"{name}.safetensors"
    now = datetime.now(UTC)
    card = {
        "name": name,
        "version": f"{name}-{now.strftime('%Y%m%d-%H%M%S')}",
        "kind": "personal correction",
        "base": base,
        "base_version": base_spec.version,
        "head": name,
        "heads": {
            name: {
                "kind": "linear",
                "role": "personal correction: the rating is the base model's rating + this head",
                "metrics": {"srcc": report["srcc"], "base_srcc": report["base_srcc"]},
            }
        },
        "trained_at": now.isoformat(timespec="seconds"),
        "source": str(Path(folder).resolve()),
        "n_ratings": len(samples),
        "ratings": counts,
        "selection": {
            "method": f"repeated grouped k-fold ({cv['folds']} folds x {cv['repeats']}, whole "
            f"{grouped_by}s held out), ridge strength chosen inside each fold",
            "alpha": fit.alpha if math.isfinite(fit.alpha) else None,  # None: no correction
            "inner_concordance": fit.inner,
            "min_gain": min_gain,
            "decision": why,
        },
        "metrics": {
            "srcc": report["srcc"],
            "srcc_se": report["srcc_se"],
            "base_srcc": report["base_srcc"],
            "base_srcc_se": report["base_srcc_se"],
            "n_ratings": len(samples),
        },
        "beats_base": active_ok,
        "star_thresholds": list(base_spec.card.get("star_thresholds") or FALLBACK_THRESHOLDS),
    }
    write_model(weights, correction_state(fit, name), card)

    if out_dir is None:
        if active_ok:
            select_model(name, reason=f"beat {base} on {len(samples)} ratings ({why})")
        elif selected_model_name() == name:
            select_model(None)  # an older run of this model was active; it no longer wins
    report["active"] = out_dir is None and active_ok
    report["weights"] = str(weights)
    return report
