"""Pixels to model input, exactly as the ImageNet weights and photod's heads expect.

The whole photo is resized to 224x224 (PARA's training images were squashed to that size, so the
head has only ever seen whole, squashed photos), then scaled to [-1, 1] as (x/255 - 0.5) / 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

INPUT_SIZE = 224


def resize_for_model(pixels: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """HxWx3 uint8 (or a Pillow RGB image) -> size x size x 3 uint8 with antialiasing."""
    pixels = np.asarray(pixels)
    if pixels.shape[0] == size and pixels.shape[1] == size:
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR))


def to_tensor(batch: Sequence[np.ndarray] | np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """A list of HxWx3 uint8 arrays -> normalised float tensor [B, 3, size, size], channels_last."""
    import torch  # here: decode workers import this module for INPUT_SIZE and never need torch

    stacked = np.stack([resize_for_model(p, size) for p in batch])
    tensor = torch.from_numpy(stacked).permute(0, 3, 1, 2).float()
    tensor = tensor.div_(127.5).sub_(1.0)
    return tensor.contiguous(memory_format=torch.channels_last)
