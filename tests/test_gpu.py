"""The CUDA path: same scores as the CPU (within fp16 tolerance); a clear error without CUDA.

Tests marked `gpu` are skipped cleanly on machines without a CUDA device (see conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from photod.errors import ModelError
from tests import photos


def test_cuda_request_without_cuda_is_a_clear_error() -> None:
    import torch

    from photod.scoring import resolve_device

    if torch.cuda.is_available():
        assert resolve_device("cuda") == "cuda"
        assert resolve_device("auto") == "cuda"
    else:
        with pytest.raises(ModelError, match="no CUDA device"):
            resolve_device("cuda")
        assert resolve_device("auto") in ("cpu", "mps")
    with pytest.raises(ModelError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.gpu
def test_cuda_scores_match_cpu_scores(scorer) -> None:
    from photod.scoring import Scorer

    images = [photos.real_photo(name) for name in ("chelsea", "coffee", "astronaut", "rocket")]
    cpu_scores, cpu_embeddings = scorer.score_pixels(images)
    cuda = Scorer(device="cuda", batch_size=64)
    cuda_scores, cuda_embeddings = cuda.score_pixels(images)
    np.testing.assert_allclose(cuda_scores, cpu_scores, atol=0.05)
    cosine = (cuda_embeddings * cpu_embeddings).sum(1) / (
        np.linalg.norm(cuda_embeddings, axis=1) * np.linalg.norm(cpu_embeddings, axis=1)
    )
    assert (cosine > 0.999).all()
