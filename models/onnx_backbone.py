"""The edit-preference backbone on ONNX Runtime: `photod suggest` without importing torch.

A new `photod suggest` process spent most of its wall time before the first candidate importing
torch (about 2 s of CPU on these machines, README "Suggestions"); ONNX Runtime imports in about
0.25 s and runs the folded Lite0 faster on the CPU. The backbone of the model file that stores
the edit-preference head (models/edit_preference.py) ships beside it as an ONNX graph
(`onnx_path`), exported from the same tensors (`export`, needs torch and onnx: a build step,
`python -m photod.models.onnx_backbone`), with the SHA-256 of those tensors in the graph's
metadata: `load` refuses a graph whose backbone is not the model file's (the caller then falls
back to torch), so a retrained backbone can never be served by a stale export.

The scorer (`photod.scoring.Scorer`) runs the same kind of graph for the models that ship one
(`EXPORTED`: the default v2, whose backbone is ImageNet's, and v4): on the CPU ONNX Runtime
runs the folded Lite0 in about 0.6x torch's time per photo, with one thread beside the decoders
(README, "Benchmarks"); the heads stay torch modules over the graph's features.

The graph takes uint8 NHWC pixels (preprocessing is inside it: x / 127.5 - 1) and returns the
MLSP features (per-stage mean/std + pooled head features, `Lite0.features`' order) and, on
request, every stage's map and the head map, which the RoI crop shortlist
(`photod.suggest.roi_scores`) pools windows from. Heights and widths must be multiples of 32:
the TF "same" padding of the stride-2 convolutions is fixed in the graph for those sizes (all
shape buckets and the RoI input are). The folded weights stay fp32 (about 13 MB): rounded to
fp16 they moved features by up to 0.3 %, enough to reorder close candidates.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from photod.errors import ModelError

log = logging.getLogger("photod")

MAP_NAMES = tuple(f"stage{i}" for i in range(7)) + ("head_map",)
HASH_KEY = "photod_backbone_sha256"
# The shipped model files that have an ONNX export of their backbone beside them.
EXPORTED = ("photod-aesthetic-v2", "photod-aesthetic-v4")
# Images per session call on the CPU: one at a time the folded Lite0's activations stay in the
# cache. Measured on 2 cores: one thread ~21 ms per 224x224 photo alone, ~30 ms at batch 8;
# two threads at 224x320 (a suggest bucket) 15.8 ms alone, 19.5 at 4, 30.0 at 16.
CPU_RUN_BATCH = 1


def onnx_path(model_file: Path) -> Path:
    """Where the ONNX export of `model_file`'s backbone lives (beside it)."""
    return model_file.with_name(model_file.stem + ".backbone.onnx")


def backbone_digest(model_file: Path) -> str:
    """SHA-256 over the model file's `backbone.*` tensors (names, dtypes, shapes, bytes) and the
    ImageNet weights file, which supplies every module the file does not store (all of v2's,
    v4's early stages): a graph is tied to both."""
    from photod.models.backbone import imagenet_weights_path

    model_file, imagenet = Path(model_file), imagenet_weights_path()
    return _digest(model_file, *_stamp(model_file), imagenet, *_stamp(imagenet))


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _digest(
    model_file: Path, _size: int, _mtime: int, imagenet: Path, *_imagenet_stamp: int
) -> str:
    # Cached per file version (size, mtime): the scorer and the suggest objective of one process
    # check the same files.
    from safetensors.numpy import load_file

    state = load_file(str(model_file))
    digest = hashlib.sha256()
    for name in sorted(k for k in state if k.startswith("backbone.")):
        value = np.ascontiguousarray(state[name])
        digest.update(f"{name}|{value.dtype}|{value.shape}|".encode())
        digest.update(value.tobytes())
    with open(imagenet, "rb") as handle:
        digest.update(b"imagenet|" + hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


class OnnxBackbone:
    """An ONNX Runtime session of the exported backbone; numpy in, numpy out."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def features(self, pixels: np.ndarray) -> np.ndarray:
        """MLSP features [N, 2848] of uint8 pixels [N, H, W, 3] (H, W multiples of 32)."""
        _check_shape(pixels)
        return self.session.run(["features"], {"pixels": pixels})[0]

    def maps(self, pixels: np.ndarray) -> list[np.ndarray]:
        """[stage0 ... stage6, head_map] outputs [N, C, h, w] of uint8 pixels [N, H, W, 3]."""
        _check_shape(pixels)
        return self.session.run(list(MAP_NAMES), {"pixels": pixels})


def _check_shape(pixels: np.ndarray) -> None:
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[3] != 3:
        raise ValueError(f"expected uint8 [N, H, W, 3] pixels, got {pixels.dtype} {pixels.shape}")
    if pixels.shape[1] % 32 or pixels.shape[2] % 32:
        raise ValueError(f"height and width must be multiples of 32, got {pixels.shape[1:3]}")


def load(model_file: Path, threads: int | None = None) -> OnnxBackbone:
    """The ONNX session of `model_file`'s backbone; ModelError when onnxruntime is missing, the
    export is missing, or it was made from other backbone tensors."""
    path = onnx_path(model_file)
    if not path.exists():
        raise ModelError(f"no ONNX export of {model_file.name} ({path.name})")
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError("onnxruntime is not installed") from exc
    options = ort.SessionOptions()
    from photod.cpus import available_cpus

    options.intra_op_num_threads = threads or available_cpus()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    stored = session.get_modelmeta().custom_metadata_map.get(HASH_KEY)
    if stored != backbone_digest(model_file):
        raise ModelError(f"{path.name} was exported from other backbone tensors than {model_file}")
    return OnnxBackbone(session)


def export(model_file: Path, out: Path | None = None) -> Path:
    """Export `model_file`'s folded backbone (models/lite.py) to ONNX beside it; returns the path.

    Build-time only (torch's exporter and the onnx package). The graph is traced at 224 x 288 with
    dynamic batch, height and width.
    """
    import onnx
    import torch
    from safetensors.torch import load_file

    from photod.models.aesthetic import split_state
    from photod.models.lite import lite0_from_file_state

    out = out or onnx_path(model_file)
    backbone = lite0_from_file_state(split_state(load_file(str(model_file)))[1]).eval()

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = backbone

        def forward(self, pixels: torch.Tensor):  # type: ignore[no-untyped-def]
            x = pixels.permute(0, 3, 1, 2).float() / 127.5 - 1.0
            h = self.net.stem(x)
            pooled, maps = [], []
            for stage in self.net.stages:
                h = stage(h)
                maps.append(h)
                flat = h.flatten(2)
                pooled += [flat.mean(dim=2), flat.std(dim=2)]
            head_map = self.net.head(h)
            maps.append(head_map)
            pooled.append(head_map.mean(dim=(2, 3)))
            return (torch.cat(pooled, dim=1), *maps)

    example = torch.zeros(2, 224, 288, 3, dtype=torch.uint8)
    names = ["features", *MAP_NAMES]
    axes = {"pixels": {0: "n", 1: "h", 2: "w"}, "features": {0: "n"}}
    axes.update({name: {0: "n", 2: f"{name}_h", 3: f"{name}_w"} for name in MAP_NAMES})
    tmp = out.with_suffix(".tmp.onnx")
    with torch.inference_mode():
        torch.onnx.export(
            Graph().eval(),
            (example,),
            str(tmp),
            input_names=["pixels"],
            output_names=names,
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    model = onnx.load(str(tmp))
    tmp.unlink()
    entry = model.metadata_props.add()
    entry.key, entry.value = HASH_KEY, backbone_digest(model_file)
    onnx.checker.check_model(model)
    part = out.with_suffix(".part")
    part.write_bytes(model.SerializeToString())
    part.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    from photod.models.edit_preference import DEFAULT_MODEL_FILE

    parser = argparse.ArgumentParser(prog="python -m photod.models.onnx_backbone")
    parser.add_argument(
        "model_files",
        nargs="*",
        type=Path,
        help="model files to export (default: the shipped ones in EXPORTED)",
    )
    args = parser.parse_args(argv)
    weights = DEFAULT_MODEL_FILE.parent
    for model_file in args.model_files or [weights / f"{n}.safetensors" for n in EXPORTED]:
        path = export(model_file)
        print(f"written {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
