"""Third-party units (models, enhancers) from entry-point groups, loaded once and lazily."""

from __future__ import annotations

import logging
from importlib import metadata

log = logging.getLogger("photod")

_loaded_groups: set[str] = set()


def load_entry_points(group: str) -> None:
    """Import every entry point of `group` once; importing one registers its units.

    A broken plug-in is logged and skipped: it must never break photod itself.
    """
    if group in _loaded_groups:
        return
    _loaded_groups.add(group)
    for entry_point in metadata.entry_points(group=group):
        try:
            entry_point.load()
        except Exception as exc:
            log.warning("cannot load plug-in %s from %s: %s", entry_point.name, group, exc)
