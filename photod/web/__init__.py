"""photod's local web page (`photod serve`): upload and score photos, browse the library's index.

Importing this package loads Starlette and Jinja but no torch: the model is built on the first
upload, inside a worker thread (see `photod.web.app`).
"""

from photod.web.app import WebConfig, create_app

__all__ = ["WebConfig", "create_app"]
