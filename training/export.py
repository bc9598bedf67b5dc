"""Write a trained model as photod ships it: safetensors weights and a JSON card beside them.

Both files are written atomically (temp file in the same folder, fsync, rename), so an
interrupted training run never leaves a half-written model that `photod models` would list.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temp file beside `path`, fsync it, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a shipped model must be readable by all
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_model(weights: Path, state: dict[str, Any], card: dict[str, Any]) -> None:
    """Save `state` (tensors named `head.*` / `backbone.*`) and its card (`weights` .json)."""
    from safetensors.torch import save_file

    atomic_write(weights, lambda tmp: save_file(state, str(tmp)))
    card_text = json.dumps(card, indent=2) + "\n"
    atomic_write(weights.with_suffix(".json"), lambda tmp: tmp.write_text(card_text))
