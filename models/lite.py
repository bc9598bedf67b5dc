"""EfficientNet-Lite0 for inference in plain torch: batch norm folded, no timm, no torchvision.

`photod suggest` in a new process paid ~2.3 s of CPU just to import timm (which imports
torchvision) before the first photo (measured, README "Suggestions"). Inference needs none of
it: this module rebuilds timm's `tf_efficientnet_lite0` from a timm-named state dict (the
`backbone.*` tensors of a photod model file), folds every batch norm into the convolution before
it, and runs the same arithmetic: TF "same" padding on the stride-2 convolutions (computed per
input size, so any input shape works), ReLU6, residuals where timm has them. Its MLSP features
equal `photod.models.aesthetic.multilevel_features` to float tolerance (tested against timm).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (block type, repeats, kernel, stride of the first block, expansion, output channels): timm's
# "ds_r1_k3_s1_e1_c16, ir_r2_k3_s2_e6_c24, ir_r2_k5_s2_e6_c40, ir_r3_k3_s2_e6_c80,
# ir_r3_k5_s1_e6_c112, ir_r4_k5_s2_e6_c192, ir_r1_k3_s1_e6_c320".
LITE0_STAGES = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3


def timm_names() -> list[str]:
    """timm's `tf_efficientnet_lite0` state-dict names, in its order (the order the packaged
    ImageNet weights come in), without importing timm."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    names = ["conv_stem.weight", *(f"bn1.{p}" for p in bn)]
    for s, (kind, repeats, *_rest) in enumerate(LITE0_STAGES):
        for b in range(repeats):
            base = f"blocks.{s}.{b}"
            layers = (
                [("conv_dw", "bn1"), ("conv_pw", "bn2")]
                if kind == "ds"
                else [("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")]
            )
            for conv, norm in layers:
                names += [f"{base}.{conv}.weight", *(f"{base}.{norm}.{p}" for p in bn)]
    names += ["conv_head.weight", *(f"bn2.{p}" for p in bn), "classifier.weight", "classifier.bias"]
    return names


class FoldedConv(nn.Module):
    """A convolution with its batch norm folded in, TF "same" padding, optional ReLU6."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
    ):
        super().__init__()
        # Stride 1: "same" padding is symmetric and static, so the convolution pads (as timm
        # does there); a separate F.pad per layer cost ~50 % more CPU per forward pass.
        # Stride 2: TF's padding depends on the input size, computed per call as timm does.
        self.dynamic_pad = stride != 1
        padding = 0 if self.dynamic_pad else kernel // 2
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=padding, groups=groups, bias=True)
        self.kernel, self.stride, self.act = kernel, stride, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic_pad:
            pad = _same_padding(x.shape[-2], x.shape[-1], self.kernel, self.stride)
            if any(pad):
                x = F.pad(x, pad)
        x = self.conv(x)
        return F.relu6(x, inplace=True) if self.act else x  # in place, as timm's act layers


def _same_padding(h: int, w: int, kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TF "SAME" padding (left, right, top, bottom), as timm's Conv2dSame computes it."""

    def total(size: int) -> int:
        return max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)

    th, tw = total(int(h)), total(int(w))
    return (tw // 2, tw - tw // 2, th // 2, th - th // 2)


class Block(nn.Module):
    """timm's DepthwiseSeparableConv ("ds") or InvertedResidual ("ir") without SE (Lite)."""

    def __init__(self, kind: str, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        self.kind = kind
        mid = cin * expand
        if kind == "ds":
            self.ops = nn.Sequential(
                FoldedConv(cin, cin, kernel, stride, groups=cin),
                FoldedConv(cin, cout, 1, act=False),
            )
        else:
            self.ops = nn.Sequential(
                FoldedConv(cin, mid, 1),
                FoldedConv(mid, mid, kernel, stride, groups=mid),
                FoldedConv(mid, cout, 1, act=False),
            )
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ops(x)
        return out + x if self.skip else out


class Lite0(nn.Module):
    """The folded backbone; `features(x)` gives the MLSP vector and the pooled 1280-d embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = FoldedConv(3, STEM_CHANNELS, 3, 2)
        stages = []
        cin = STEM_CHANNELS
        for kind, repeats, kernel, stride, expand, cout in LITE0_STAGES:
            blocks = []
            for r in range(repeats):
                blocks.append(Block(kind, cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = FoldedConv(cin, HEAD_CHANNELS, 1)

    # timm's attribute names, so code written against timm's tree (`multilevel_features`,
    # `trunk_forward`, the RoI scorers of photod.suggest) runs on this network unchanged: timm's
    # bn1/bn2 (batch norm + ReLU6) are folded into the stem and head convolutions here.
    @property
    def conv_stem(self) -> FoldedConv:
        return self.stem

    @property
    def blocks(self) -> nn.ModuleList:
        return self.stages

    @property
    def conv_head(self) -> FoldedConv:
        return self.head

    @staticmethod
    def bn1(x: torch.Tensor) -> torch.Tensor:
        return x

    bn2 = bn1

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(MLSP features [B, 2848], embedding [B, 1280]) in multilevel_features' order."""
        h = self.stem(x)
        pooled = []
        for stage in self.stages:
            h = stage(h)
            flat = h.float().flatten(2)
            pooled += [flat.mean(dim=2), flat.std(dim=2)]
        h = self.head(h)
        embedding = h.float().mean(dim=(2, 3))
        pooled.append(embedding)
        return torch.cat(pooled, dim=1), embedding

    @classmethod
    def from_timm_state(cls, state: dict[str, torch.Tensor], prefix: str = "") -> Lite0:
        """Build from timm `tf_efficientnet_lite0` tensor names (after `prefix`), BN folded."""
        net = cls()
        used: set[str] = set()

        def fold(target: FoldedConv, conv: str, bn: str) -> None:
            names = [f"{prefix}{conv}.weight"] + [
                f"{prefix}{bn}.{p}" for p in ("weight", "bias", "running_mean", "running_var")
            ]
            weight, gamma, beta, mean, var = (state[n].float() for n in names)
            used.update(names)
            scale = gamma / torch.sqrt(var + BN_EPS)
            with torch.no_grad():
                target.conv.weight.copy_(weight * scale.reshape(-1, 1, 1, 1))
                target.conv.bias.copy_(beta - mean * scale)

        fold(net.stem, "conv_stem", "bn1")
        for s, stage in enumerate(net.stages):
            for b, block in enumerate(stage):
                base = f"blocks.{s}.{b}"
                if block.kind == "ds":
                    fold(block.ops[0], f"{base}.conv_dw", f"{base}.bn1")
                    fold(block.ops[1], f"{base}.conv_pw", f"{base}.bn2")
                else:
                    fold(block.ops[0], f"{base}.conv_pw", f"{base}.bn1")
                    fold(block.ops[1], f"{base}.conv_dw", f"{base}.bn2")
                    fold(block.ops[2], f"{base}.conv_pwl", f"{base}.bn3")
        fold(net.head, "conv_head", "bn2")
        # Every conv and BN tensor of the backbone must have been used (classifier aside).
        left = {
            k
            for k in state
            if k.startswith(prefix)
            and not k.endswith("num_batches_tracked")
            and "classifier" not in k
            and k not in used
        }
        if left:
            raise ValueError(f"unused backbone tensors: {sorted(left)[:5]}")
        return net.eval()


def lite0_from_file_state(backbone_state: dict[str, torch.Tensor]) -> Lite0:
    """The folded Lite0 of a photod file's `backbone.*` tensors (prefix stripped). Modules a file
    does not store (a partially fine-tuned backbone such as v4's, or a head-only file such as
    v2's) come from the packaged ImageNet weights, as `models.aesthetic.load_backbone` does."""
    from photod.errors import ModelError
    from photod.models.backbone import imagenet_weights_path

    names = timm_names()
    if not all(n in backbone_state for n in names if "classifier" not in n):
        source = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
        if len(source) != len(names):
            raise ModelError(f"ImageNet weights have {len(source)} tensors, expected {len(names)}")
        for (src_name, tensor), name in zip(source.items(), names, strict=True):
            if name in backbone_state and backbone_state[name].shape != tensor.shape:
                raise ModelError(f"shape mismatch pairing {src_name} with {name}")
        imagenet = dict(zip(names, source.values(), strict=True))
        backbone_state = {**imagenet, **backbone_state}
    return Lite0.from_timm_state(backbone_state)
