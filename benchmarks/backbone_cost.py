"""Forward cost per photo of EfficientNet-Lite0/1/2 at their input sizes, batch 32, on this CPU.

    python -m benchmarks.backbone_cost [--repeats 5] [--threads 2]

The issue's bound: the default model's forward may cost at most 2.5x Lite0's per photo at batch
32, horizontal-flip test-time averaging counted (a flip doubles the photos forwarded). The models
are timed round-robin in one process (the same load for each), through the MLSP feature path the
scorer runs, with BatchNorm folded as `Scorer` does on the CPU. Architecture only: the cost does
not depend on the weights, so no weight package is needed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

BACKBONES = {
    "lite0": ("tf_efficientnet_lite0", 224),
    "lite1": ("tf_efficientnet_lite1", 240),
    "lite2": ("tf_efficientnet_lite2", 260),
}


def main(argv: list[str] | None = None) -> dict:
    import timm
    import torch

    from photod.models.aesthetic import AestheticNet, LinearHead, multilevel_features
    from photod.scoring import fold_batchnorm

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    nets, inputs = {}, {}
    for name, (arch, size) in BACKBONES.items():
        backbone = timm.create_model(arch, pretrained=False).eval()
        with torch.inference_mode():
            dim = multilevel_features(backbone, torch.zeros(1, 3, size, size))[0].shape[1]
        net = AestheticNet(backbone=backbone, head=LinearHead(in_dim=dim)).eval()
        nets[name] = fold_batchnorm(net).to(memory_format=torch.channels_last)
        x = torch.rand(args.batch, 3, size, size) * 2 - 1
        inputs[name] = x.contiguous(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {name: [] for name in nets}
    with torch.inference_mode():
        for name in nets:  # warm-up
            nets[name].forward_all(inputs[name])
        for _ in range(args.repeats):
            for name, net in nets.items():
                start = time.perf_counter()
                net.forward_all(inputs[name])
                times[name].append((time.perf_counter() - start) / args.batch * 1000)
    base = statistics.median(times["lite0"])
    result = {}
    for name, values in times.items():
        ms = statistics.median(values)
        result[name] = {
            "input": BACKBONES[name][1],
            "ms_per_photo": round(ms, 2),
            "ratio_vs_lite0": round(ms / base, 2),
            "ratio_with_flip_tta": round(2 * ms / base, 2),
        }
    print(json.dumps({"threads": args.threads, "batch": args.batch, **result}, indent=1))
    return result


if __name__ == "__main__":
    main()
