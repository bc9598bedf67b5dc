"""Check that a device scores like the CPU, and how fast a GPU could decode JPEGs itself.

    python -m benchmarks.gpu_check --device cuda [--photos 64] [--tolerance 0.05]

1. Scores of the same photos (scikit-image's real photographs and generated camera JPEGs, through
   `Scorer.score_paths`: same decoding, same preprocessing) on `--device` and on the CPU. CUDA
   runs the model in float16, so scores differ by a little; the check fails (exit 1) when any
   score differs by more than `--tolerance` on the 1-5 scale or when stars disagree on more than
   `--max-star-flips` of the photos.
2. With CUDA: photos/s of nvJPEG decoding (`torchvision.io.decode_jpeg(device="cuda")`, full
   resolution, batched) and of resizing on the GPU, to judge whether decoding on the GPU would
   beat parallel CPU decoders with DCT scaling (photod's path). Not used by photod yet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks import common, inputs


def compare_scores(
    device: str,
    workdir: Path,
    photos: int,
    size: tuple[int, int],
    batch_size: int,
    model: str | None = None,
) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    from photod.scoring import DEFAULT_MODEL, Scorer

    folder = workdir / "gpu-check"
    folder.mkdir(parents=True, exist_ok=True)
    jpegs = inputs.cached_jpeg_set(workdir, size, distinct=min(photos, 12))
    paths = [jpegs.write(i, folder) for i in range(photos)]
    for name in inputs.SAMPLES:  # the untouched sample photos too, at their own size
        target = folder / f"sample_{name}.png"
        if not target.exists():
            Image.fromarray(inputs.real_photo(name)).save(target)
        paths.append(target)
    cpu = Scorer(model or DEFAULT_MODEL, device="cpu", batch_size=batch_size)
    other = Scorer(model or DEFAULT_MODEL, device=device, batch_size=batch_size)
    cpu_results = list(cpu.score_paths(paths))
    other_results = list(other.score_paths(paths))
    a = np.array([r.score for r in cpu_results], dtype=np.float64)
    b = np.array([r.score for r in other_results], dtype=np.float64)
    stars_a = [r.stars for r in cpu_results]
    stars_b = [r.stars for r in other_results]
    flips = sum(x != y for x, y in zip(stars_a, stars_b, strict=True))
    emb_a = np.stack([r.embedding for r in cpu_results])
    emb_b = np.stack([r.embedding for r in other_results])
    cosine = (emb_a * emb_b).sum(1) / (
        np.linalg.norm(emb_a, axis=1) * np.linalg.norm(emb_b, axis=1)
    )
    return {
        "device": other.device,
        "photos": len(paths),
        "max_abs_score_diff": round(float(np.abs(a - b).max()), 5),
        "mean_abs_score_diff": round(float(np.abs(a - b).mean()), 5),
        "star_flips": flips,
        "min_embedding_cosine": round(float(cosine.min()), 5),
    }


def nvjpeg_rate(workdir: Path, size: tuple[int, int], count: int, batch: int) -> dict[str, Any]:
    """photos/s of batched nvJPEG decoding + GPU resize to 224 (decode only, no model)."""
    import torch
    import torch.nn.functional as F
    import torchvision
    from torchvision.io import decode_jpeg

    jpegs = inputs.cached_jpeg_set(workdir, size, distinct=12)
    datas = [torch.frombuffer(bytearray(jpegs.data(i)), dtype=torch.uint8) for i in range(count)]

    def once() -> None:
        for start in range(0, count, batch):
            images = decode_jpeg(datas[start : start + batch], device="cuda")
            for image in images:
                F.interpolate(image[None].float(), size=(224, 224), mode="area")
        torch.cuda.synchronize()

    once()  # warm-up: nvJPEG handles, allocator
    seconds = [common.time_call(once)[0] for _ in range(3)]
    return {
        "torchvision": torchvision.__version__,
        "size": f"{size[0]}x{size[1]}",
        "batch": batch,
        "photos_per_s": common.summary([count / s for s in seconds], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--photos", type=int, default=48)
    parser.add_argument("--size", default="6000x4000")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--max-star-flips", type=float, default=0.1, help="fraction of photos")
    parser.add_argument("--model", default=None)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/photod-bench"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    result: dict[str, Any] = {"machine": common.machine_info(args.device)}
    result["scores"] = compare_scores(
        args.device, args.workdir, args.photos, (w, h), args.batch_size, args.model
    )
    if args.device.startswith("cuda"):
        for size in ((w, h), (2000, 1333)):
            for batch in (64, 256):
                try:
                    entry = nvjpeg_rate(args.workdir, size, 256, batch)
                except Exception as exc:  # report, do not hide the score check's verdict
                    entry = {"error": f"{type(exc).__name__}: {exc}"}
                result.setdefault("nvjpeg", []).append(entry)
    scores = result["scores"]
    ok = (
        scores["max_abs_score_diff"] <= args.tolerance
        and scores["star_flips"] <= args.max_star_flips * scores["photos"]
    )
    result["verdict"] = "ok" if ok else "FAIL"
    print(json.dumps(result, indent=2))
    if args.out:
        common.write_json(args.out, result)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
