"""The ASGI app behind `photod serve`: upload-and-score page, JSON API and a library browser.

Uploads are written to a private temp file and go through the same functions as the CLI
(`Scorer.score_paths`, `photod.suggest.suggest_photo`), so a photo scores the same here as with
`photod score`. One `Scorer` per app, built lazily on the first upload (under a lock); every model
call runs in a worker thread behind a small capacity limiter so the event loop keeps serving
pages while a photo is scored.

Safety: limits on upload bytes (checked while the body streams in, not after) and on decoded
pixels; photo files are served only as cached thumbnails and only when they resolve (symbolic links
followed) to a place inside a configured library folder; originals are only ever read. Every bad
request gets a JSON error `{"status": "error", "code": ..., "error": ...}` with a 4xx status.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import io
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Message, Receive

from photod.errors import DecodeError, ModelError, PhotodError

log = logging.getLogger("photod")

WEB_DIR = Path(__file__).parent
DEFAULT_MAX_UPLOAD_BYTES = 64_000_000  # a full-size camera RAW fits; a video does not
DEFAULT_MAX_PIXELS = 100_000_000
# Long side the browser resizes to before upload: enough for the 224 px model input and a
# suggestion search on a ~1000 px working copy, small enough to upload in a blink.
DEFAULT_RESIZE_LONG_SIDE = 1024
THUMB_SIZES = (320, 1280)
# Browsers send a generic name ("blob", "image.jpg") or none; the content type decides then.
CONTENT_TYPE_SUFFIX = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/tiff": ".tif",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "image/avif": ".avif",
    "image/x-adobe-dng": ".dng",
}
# Decode error code -> HTTP status of the API answer.
ERROR_STATUS = {
    "too_large": 413,
    "unsupported": 415,
    "empty": 400,
    "not_an_image": 422,
    "truncated": 422,
    "decode": 422,
    "model": 503,
}


@dataclass
class WebConfig:
    """Settings of one web app; `photod serve` fills it from flags and the config file."""

    db_path: Path | None = None
    library_roots: Sequence[Path] = field(default_factory=list)
    model: str | None = None
    device: str = "auto"
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    resize_long_side: int = DEFAULT_RESIZE_LONG_SIDE
    thumb_dir: Path | None = None
    model_workers: int = 2
    star_mapping: Any = None  # a photod.stars.StarMapping from the config, else the model card's
    preload_model: bool = False  # `photod serve`: load the model in the background at start
    suggest_objective: str = "edit-preference"  # config suggest_objective
    # Who may talk to the page (see "Access" below): the Host names it answers to besides the
    # loopback ones, the port it listens on (None: any; for tests and embedding), and the
    # access token a non-loopback server requires (None: no token, loopback only).
    hosts: Sequence[str] = field(default_factory=list)
    port: int | None = None
    token: str | None = None
    thumb_workers: int = 2
    thumb_cache_bytes: int = 512_000_000

    def resolved_roots(self) -> list[Path]:
        roots = []
        for root in self.library_roots:
            try:
                roots.append(Path(root).expanduser().resolve(strict=True))
            except OSError:
                log.warning("library folder %s does not exist; nothing under it is served", root)
        return roots


class ApiError(Exception):
    """A request photod refuses; becomes a JSON error answer with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _BodyTooLarge(Exception):
    pass


class PhotodJSONResponse(JSONResponse):
    """JSON that tolerates the odd EXIF value (dates, rationals) by writing it as a string."""

    def render(self, content: Any) -> bytes:
        # NaN/inf (an odd EXIF rational, a broken model output) become null, never a bare 500.
        return json.dumps(
            _finite(content), ensure_ascii=False, default=str, allow_nan=False
        ).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


@dataclass
class _Upload:
    path: Path
    filename: str
    size: int
    folder: Path

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class _State:
    """What one app shares between requests: settings, the lazy scorer, the model limiter."""

    def __init__(self, config: WebConfig, scorer: Any = None) -> None:
        from photod.paths import data_dir

        self.config = config
        self.roots = config.resolved_roots()
        self.thumb_dir = config.thumb_dir or data_dir() / "thumbnails"
        self._scorer = scorer
        self._scorer_lock = threading.Lock()
        self.model_limiter = anyio.CapacityLimiter(max(1, config.model_workers))
        self._preload: threading.Thread | None = None
        self.model_error: str | None = None
        # Thumbnails decode full photos: a page of 48 must not start 48 decodes at once.
        self.thumb_limiter = anyio.CapacityLimiter(max(1, config.thumb_workers))
        self._thumb_lock = threading.Lock()
        self._thumb_bytes: int | None = None  # running total of the cache, None: not counted yet

    def preload(self) -> None:
        """Load (and warm up) the model in a background thread, so the first upload does not
        wait for it; the pages show "loading model" meanwhile (`model_state`)."""

        def load() -> None:
            import numpy as np

            try:
                scorer = self.scorer()
                scorer.score_pixels([np.zeros((224, 224, 3), np.uint8)])  # first pass is slow
            except Exception as exc:  # reported on the page and at the first upload
                self.model_error = str(exc)
                log.error("model unavailable: %s", exc)
            else:
                log.info("model %s ready", scorer.model_name)

        self._preload = threading.Thread(target=load, name="photod-model-load", daemon=True)
        self._preload.start()

    @property
    def model_state(self) -> str:
        """loading, ready, error, or lazy (loaded at the first upload)."""
        if self._preload is not None and self._preload.is_alive():
            return "loading"
        if self.model_error is not None:
            return "error"
        if self._scorer is not None and getattr(self._scorer, "_net", None) is not None:
            return "ready"
        return "lazy"

    def scorer(self) -> Any:
        """The app's one Scorer, built on first use (torch is imported only here)."""
        with self._scorer_lock:
            if self._scorer is None:
                from photod.objective import use_objective
                from photod.scoring import Scorer

                self._scorer = use_objective(
                    Scorer(
                        model=self.config.model,  # None: the active model, personal ones too
                        device=self.config.device,
                        batch_size=8,
                        max_pixels=self.config.max_pixels,
                        star_mapping=self.config.star_mapping,
                    ),
                    self.config.suggest_objective,
                )
            return self._scorer

    async def run_model(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run a model call in a worker thread; at most `model_workers` at once."""
        return await anyio.to_thread.run_sync(func, *args, limiter=self.model_limiter)

    def thumbnail_written(self, written: Path, size: int) -> None:
        """Keep the thumbnail cache under `thumb_cache_bytes`: the least recently used go first
        (never the one just written)."""
        limit = self.config.thumb_cache_bytes
        with self._thumb_lock:
            if self._thumb_bytes is None:
                self._thumb_bytes = sum(size for _, size, _ in _cache_files(self.thumb_dir))
            else:
                self._thumb_bytes += size
            if self._thumb_bytes <= limit:
                return
            files = sorted(_cache_files(self.thumb_dir), key=lambda item: item[2])
            total = sum(size for _, size, _ in files)
            for path, size, _ in files:
                if total <= limit * 0.8:  # trim below the limit, so trims stay rare
                    break
                if path == written:
                    continue
                try:
                    path.unlink()
                    total -= size
                except FileNotFoundError:
                    total -= size
                except OSError as exc:
                    log.warning("web: cannot trim thumbnail cache %s: %s", path, exc)
            self._thumb_bytes = total
            log.info("web: thumbnail cache trimmed to %.1f MB", total / 1e6)

    def db_path(self) -> Path:
        from photod.paths import default_db_path

        return Path(self.config.db_path) if self.config.db_path else default_db_path()


def _cache_files(folder: Path) -> list[tuple[Path, int, float]]:
    """(path, bytes, last use) of every cached thumbnail."""
    found = []
    try:
        subfolders = list(os.scandir(folder))
    except OSError:
        return []
    for sub in subfolders:
        if not sub.is_dir(follow_symlinks=False):
            continue
        try:
            entries = list(os.scandir(sub.path))
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".jpg") and not entry.name.startswith("."):
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                found.append((Path(entry.path), st.st_size, max(st.st_atime, st.st_mtime)))
    return found


def _state(request: Request) -> _State:
    return request.app.state.photod


# ---------------------------------------------------------------------------------------------
# Uploads


def _limited_receive(receive: Receive, limit: int) -> Receive:
    """Wrap the ASGI receive so reading more than `limit` body bytes raises at once."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge()
        return message

    return wrapped


def _upload_suffix(filename: str, content_type: str | None) -> str:
    from photod.decode import SUPPORTED_EXTENSIONS

    suffix = Path(filename).suffix.lower()
    if suffix in SUPPORTED_EXTENSIONS:
        return suffix
    by_type = CONTENT_TYPE_SUFFIX.get((content_type or "").split(";")[0].strip().lower())
    if by_type:
        return by_type
    raise ApiError(
        415,
        "unsupported",
        f"unsupported file type {suffix or content_type or '(none)'!r}; send a JPEG, PNG, TIFF, "
        "HEIC or camera RAW file",
    )


async def _receive_upload(request: Request, config: WebConfig) -> _Upload:
    """Read the multipart field `file` into a private temp folder, enforcing the byte limit."""
    limit = config.max_upload_bytes
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(400, "bad_request", "send the photo as multipart/form-data in field 'file'")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise ApiError(413, "too_large", _too_large_message(int(declared), limit))
    # A fresh Request over a counting receive: the byte limit holds even without Content-Length.
    limited = Request(request.scope, _limited_receive(request.receive, limit + 64 * 1024))
    try:
        form = await limited.form(max_files=1, max_fields=8)
    except _BodyTooLarge:
        raise ApiError(413, "too_large", _too_large_message(None, limit)) from None
    except HTTPException as exc:  # Starlette's answer to a malformed multipart body
        raise ApiError(400, "bad_request", f"malformed upload: {exc.detail}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "bad_request", "multipart field 'file' with a photo is missing")
        filename = Path(upload.filename or "upload").name or "upload"
        suffix = _upload_suffix(filename, upload.content_type)
        folder = Path(tempfile.mkdtemp(prefix="photod-upload-"))
        target = folder / f"upload{suffix}"
        try:
            size = await anyio.to_thread.run_sync(_copy_upload, upload, target)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if size > limit:
            shutil.rmtree(folder, ignore_errors=True)
            raise ApiError(413, "too_large", _too_large_message(size, limit))
        return _Upload(target, filename, size, folder)
    finally:
        await form.close()


def _copy_upload(upload: UploadFile, target: Path) -> int:
    upload.file.seek(0)
    with open(target, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1024 * 1024)
    return target.stat().st_size


def _too_large_message(size: int | None, limit: int) -> str:
    got = f" ({size / 1e6:.1f} MB)" if size else ""
    return f"upload too large{got}; the limit is {limit / 1e6:.1f} MB"


# (temp path, uploaded name) of the upload a request is working on, for the log filter below.
_CURRENT_UPLOAD: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "photod_upload", default=None
)


class _UploadNameFilter(logging.Filter):
    """Log lines written while an upload is processed name the user's file, not its temp copy."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _CURRENT_UPLOAD.get()
        if current is not None:
            message = record.getMessage()
            if current[0] in message:
                record.msg, record.args = message.replace(*current), None
        return True


def _clean_message(message: str, upload: _Upload) -> str:
    """Errors name the private temp file; the user knows the photo by its own name."""
    return message.replace(str(upload.path), upload.filename)


def _score_upload(state: _State, upload: _Upload) -> dict[str, Any]:
    scorer = state.scorer()
    # list(): run the generator to its end so its decode pool is shut down here, not at GC.
    (result,) = list(scorer.score_paths([upload.path]))
    if result.status != "ok":
        code = result.error_code or "decode"
        message = _clean_message(f"{upload.filename}: {result.error or code}", upload)
        raise ApiError(ERROR_STATUS.get(code, 422), code, message)
    payload = result.to_dict()
    payload["path"] = upload.filename
    payload["filename"] = upload.filename
    payload["bytes"] = upload.size
    payload["exif"] = _plain_exif(result.exif)
    return payload


def _suggest_upload(state: _State, upload: _Upload) -> dict[str, Any]:
    try:
        from photod.suggest import suggest_photo
    except ImportError:
        raise ApiError(501, "unavailable", "suggestions are not available in this build") from None
    # The scorer carries the upload pixel limit; suggest_photo decodes with it.
    suggestion = suggest_photo(upload.path, state.scorer())
    payload = suggestion.to_dict()
    payload["path"] = upload.filename
    return payload


def _plain_exif(exif: dict[str, Any]) -> dict[str, Any]:
    plain = (str, int, float)
    return {k: v for k, v in exif.items() if isinstance(v, plain) and k != "orientation"}


async def _model_endpoint(
    request: Request, work: Callable[[_State, _Upload], dict[str, Any]]
) -> Response:
    state = _state(request)
    upload = await _receive_upload(request, state.config)
    # Worker threads inherit the context, so library log lines made for this upload see it.
    token = _CURRENT_UPLOAD.set((str(upload.path), upload.filename))
    try:
        payload = await state.run_model(work, state, upload)
    except DecodeError as exc:
        raise ApiError(
            ERROR_STATUS.get(exc.code, 422), exc.code, _clean_message(str(exc), upload)
        ) from None
    except ModelError as exc:
        log.error("model unavailable: %s", exc)
        raise ApiError(503, "model", f"the aesthetic model is not available: {exc}") from None
    except PhotodError as exc:
        raise ApiError(422, exc.code, _clean_message(str(exc), upload)) from None
    except ApiError:
        raise
    except Exception as exc:  # a bug or a library surprise: logged in full, one clean answer
        log.exception("web: unexpected error on %s for %s", request.url.path, upload.filename)
        message = _clean_message(f"unexpected {type(exc).__name__}: {exc}", upload)
        raise ApiError(500, "internal", message) from None
    finally:
        upload.cleanup()
        _CURRENT_UPLOAD.reset(token)
    score = payload.get("score", payload.get("score_after"))
    log.info("web: %s %s -> %s", request.url.path, upload.filename, score)
    return PhotodJSONResponse(payload)


async def api_score(request: Request) -> Response:
    """POST /api/score: multipart `file` -> the `photod score --json` object for that photo."""
    return await _model_endpoint(request, _score_upload)


async def api_suggest(request: Request) -> Response:
    """POST /api/suggest: multipart `file` -> the `photod suggest --json` object."""
    return await _model_endpoint(request, _suggest_upload)


# ---------------------------------------------------------------------------------------------
# The index


def _int_param(request: Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ApiError(400, "bad_request", f"{name} must be between {lo} and {hi}, got {value}")
    return value


@dataclass
class _Filters:
    min_stars: int | None = None
    since: str | None = None
    camera: str | None = None
    status: str | None = None
    limit: int = 50

    @classmethod
    def from_request(cls, request: Request, default_limit: int = 50) -> _Filters:
        return cls(
            min_stars=_int_param(request, "min_stars", None, -1, 5),
            since=request.query_params.get("since", "").strip() or None,
            camera=request.query_params.get("camera", "").strip() or None,
            status=request.query_params.get("status", "").strip() or None,
            limit=_int_param(request, "limit", default_limit, 1, 1000) or default_limit,
        )


def _open_index(state: _State) -> Any | None:
    """The index, read-only, or None while there is none yet (the pages say so)."""
    from photod.index import open_index_readonly

    path = state.db_path()
    if not path.exists():
        return None
    return open_index_readonly(path)


def _query(state: _State, filters: _Filters, sort: str, descending: bool) -> list[dict[str, Any]]:
    from photod.index import query_photos

    db = _open_index(state)
    if db is None:
        return []
    try:
        rows = query_photos(
            db,
            min_stars=filters.min_stars,
            status=filters.status,
            since=filters.since,
            camera=filters.camera,
            sort=sort,
            descending=descending,
            limit=filters.limit,
        )
    except PhotodError as exc:  # a bad filter value (date, status) is the caller's mistake
        raise ApiError(400, "bad_request", str(exc)) from None
    finally:
        db.close()
    return [_public_row(state, row) for row in rows]


def _public_row(state: _State, row: dict[str, Any]) -> dict[str, Any]:
    """An index row as JSON: no binary columns; links to its thumbnail and detail page."""
    out = {k: v for k, v in row.items() if not isinstance(v, bytes | bytearray | memoryview)}
    for key, value in out.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
    path = str(row.get("path", ""))
    out["servable"] = _inside_roots(state, path, indexed=True) is not None
    out["thumbnail_url"] = f"/thumbs?size={THUMB_SIZES[0]}&path={quote(path)}"
    out["detail_url"] = f"/library/photo?path={quote(path)}"
    return out


def _cameras(state: _State) -> list[str]:
    db = _open_index(state)
    if db is None:
        return []
    try:
        rows = db.execute(
            "SELECT DISTINCT camera_make, camera_model FROM photos "
            "WHERE camera_model IS NOT NULL ORDER BY camera_make, camera_model"
        ).fetchall()
    finally:
        db.close()
    names = []
    for make, model in rows:
        # EXIF models often repeat the make ("Canon" / "Canon EOS R5").
        same = make and str(model).lower().startswith(str(make).lower())
        names.append(str(model) if same or not make else f"{make} {model}")
    return sorted(set(names))


def _watched_folders(state: _State) -> list[str]:
    """The folders `photod watch` has run on with this index (its `daemon_runs`), newest first."""
    db = _open_index(state)
    if db is None:
        return []
    try:
        if not db["daemon_runs"].exists():
            return []
        runs = db.execute("SELECT folders FROM daemon_runs ORDER BY id DESC").fetchall()
    finally:
        db.close()
    folders: list[str] = []
    for (value,) in runs:
        try:
            listed = json.loads(value or "[]")
        except ValueError:
            continue
        folders += [str(f) for f in listed if str(f) not in folders]
    return folders


def _photo_detail(state: _State, path: str) -> dict[str, Any] | None:
    db = _open_index(state)
    if db is None:
        return None
    try:
        from photod.index import get_by_path

        row = get_by_path(db, path)
        if row is None:
            return None
        detail = _public_row(state, row)
        detail["suggestion"] = _stored_suggestion(db, path)
    finally:
        db.close()
    detail["preview_url"] = f"/thumbs?size={THUMB_SIZES[1]}&path={quote(path)}"
    return detail


def _stored_suggestion(db: Any, path: str) -> dict[str, Any] | None:
    try:
        from photod.suggest_store import load_suggestion
    except ImportError:
        return None
    suggestion = load_suggestion(db, path)
    if suggestion is None:
        return None
    return suggestion.to_dict() if hasattr(suggestion, "to_dict") else dict(suggestion)


async def api_photos(request: Request) -> Response:
    """GET /api/photos?min_stars=&limit=&since=&camera=&status=&sort=&order= -> index rows."""
    state = _state(request)
    filters = _Filters.from_request(request)
    sort = request.query_params.get("sort", "score")
    order = request.query_params.get("order", "desc")
    if order not in {"asc", "desc"}:
        raise ApiError(400, "bad_request", "order must be asc or desc")
    rows = await anyio.to_thread.run_sync(_query, state, filters, sort, order == "desc")
    return PhotodJSONResponse({"count": len(rows), "photos": rows})


async def api_photo(request: Request) -> Response:
    """GET /api/photo?path= -> one index row with its stored suggestion (or null)."""
    state = _state(request)
    path = request.query_params.get("path", "")
    detail = await anyio.to_thread.run_sync(_photo_detail, state, path)
    if detail is None:
        raise ApiError(404, "not_found", f"{path!r} is not in the index")
    return PhotodJSONResponse(detail)


async def api_status(request: Request) -> Response:
    """GET /api/status: which model and index this page uses, and its limits."""
    from photod.models import active_model_name, get_model_spec

    state = _state(request)
    name = state.config.model or active_model_name()
    try:
        spec = get_model_spec(name)
        model = {"name": name, "version": spec.release, "available": spec.available}
    except ModelError as exc:
        model = {"name": name, "version": None, "available": False, "error": str(exc)}
    model["state"] = state.model_state
    if state.model_error:
        model["error"] = state.model_error
    return PhotodJSONResponse(
        {
            "model": model,
            "db": str(state.db_path()),
            "library_roots": [str(root) for root in state.roots],
            "max_upload_bytes": state.config.max_upload_bytes,
            "max_pixels": state.config.max_pixels,
            "resize_long_side": state.config.resize_long_side,
        }
    )


# ---------------------------------------------------------------------------------------------
# Thumbnails


def _inside_roots(state: _State, path: str, indexed: bool = False) -> Path | None:
    """`path` resolved (links followed) when it is a supported file inside a library folder or
    a photo of the index itself (`indexed`: the caller read it from the index)."""
    from photod.decode import is_supported

    if not path or "\x00" in path:
        return None
    try:
        resolved = Path(path).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_file() or not is_supported(resolved):
        return None
    if any(resolved.is_relative_to(root) for root in state.roots):
        return resolved
    # What the index holds is the library too: `photod watch DIR` needs no `--library DIR`. Only
    # that exact path (as indexed), never its neighbours.
    if indexed or _is_indexed(state, path):
        return resolved
    return None


def _is_indexed(state: _State, path: str) -> bool:
    from photod.index import get_by_path

    db = _open_index(state)
    if db is None:
        return False
    try:
        row = get_by_path(db, path)
    finally:
        db.close()
    return row is not None and row.get("status") != "missing"


def _thumbnail(state: _State, source: Path, size: int) -> bytes:
    """A JPEG of `source` with long side `size`, cached once per file version. The bytes are
    returned, not the cache path, so a cache trim cannot pull the file from under a response."""
    from PIL import Image

    from photod.decode import decode_image

    stat = source.stat()
    key = hashlib.sha256(f"{source}\0{stat.st_mtime_ns}\0{stat.st_size}\0{size}".encode())
    target = state.thumb_dir / key.hexdigest()[:2] / f"{key.hexdigest()}.jpg"
    try:
        cached = target.read_bytes()
        # Last use, for the cache trimming, goes in the access time; the mtime stays the time
        # the thumbnail was made.
        os.utime(target, ns=(time.time_ns(), target.stat().st_mtime_ns))
        return cached
    except OSError:
        pass  # not cached yet, or trimmed a moment ago
    decoded = decode_image(source, min_side=size, max_pixels=state.config.max_pixels)
    image = Image.fromarray(decoded.pixels)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    jpeg = buffer.getvalue()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Temp file + rename: two requests for the same thumbnail never see half a JPEG.
    fd, tmp = tempfile.mkstemp(prefix=".photod-tmp-", suffix=".jpg", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(jpeg)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    state.thumbnail_written(target, len(jpeg))
    return jpeg


async def thumbs(request: Request) -> Response:
    """GET /thumbs?path=&size=: a cached thumbnail of a photo inside a library folder."""
    state = _state(request)
    size = _int_param(request, "size", THUMB_SIZES[0], 1, 10_000)
    if size not in THUMB_SIZES:
        raise ApiError(400, "bad_request", f"size must be one of {list(THUMB_SIZES)}")
    path = request.query_params.get("path", "")
    source = _inside_roots(state, path)
    if source is None:
        # One answer for "missing" and "outside": do not tell a prober which files exist.
        log.warning("web: refused thumbnail for %r (not a photo inside a library folder)", path)
        raise ApiError(404, "not_found", "no such photo in the library folders")
    try:
        jpeg = await anyio.to_thread.run_sync(
            _thumbnail, state, source, size, limiter=state.thumb_limiter
        )
    except DecodeError as exc:
        raise ApiError(ERROR_STATUS.get(exc.code, 422), exc.code, str(exc)) from None
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


# ---------------------------------------------------------------------------------------------
# Pages


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
    templates.env.filters["stars"] = _stars_text
    templates.env.filters["shutter"] = _shutter_text
    return templates


def _shutter_text(seconds: Any) -> str | None:
    """0.004 -> '1/250 s', as cameras print it."""
    if seconds is None or not isinstance(seconds, int | float) or seconds <= 0:
        return None
    if seconds < 1:
        return f"1/{round(1 / seconds)} s"
    return f"{seconds:g} s"


def _stars_text(stars: Any) -> str:
    if stars is None:
        return ""
    if int(stars) < 0:
        return "reject"
    return "★" * int(stars) + "☆" * (5 - int(stars))


async def upload_page(request: Request) -> Response:
    state = _state(request)
    return request.app.state.templates.TemplateResponse(
        request,
        "upload.html",
        {
            "resize_long_side": state.config.resize_long_side,
            "max_upload_bytes": state.config.max_upload_bytes,
            "model_state": state.model_state,
            "model_error": state.model_error,
        },
    )


async def library_page(request: Request) -> Response:
    state = _state(request)
    try:
        filters = _Filters.from_request(request, default_limit=24)
        filters.status = "ok"
        best = await anyio.to_thread.run_sync(_query, state, filters, "score", True)
        worst = await anyio.to_thread.run_sync(_query, state, filters, "score", False)
        cameras = await anyio.to_thread.run_sync(_cameras, state)
    except ApiError as exc:
        return _html_error(request, exc)
    except PhotodError as exc:
        return _html_error(request, ApiError(500, exc.code, str(exc)))
    return request.app.state.templates.TemplateResponse(
        request,
        "library.html",
        {
            "best": best,
            "worst": worst,
            "filters": filters,
            "cameras": cameras,
            "has_index": state.db_path().exists(),
            "db_path": str(state.db_path()),
            "roots": state.roots,
            "watched": await anyio.to_thread.run_sync(_watched_folders, state),
        },
    )


async def photo_page(request: Request) -> Response:
    state = _state(request)
    path = request.query_params.get("path", "")
    detail = await anyio.to_thread.run_sync(_photo_detail, state, path)
    if detail is None:
        return _html_error(request, ApiError(404, "not_found", f"{path!r} is not in the index"))
    return request.app.state.templates.TemplateResponse(request, "photo.html", {"photo": detail})


def _html_error(request: Request, exc: ApiError) -> Response:
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"error": exc}, status_code=exc.status
    )


# ---------------------------------------------------------------------------------------------
# Access: Host, Origin and token checks for every request


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_COOKIE = "photod_token"
# Pages a link from another site may open (a top-level navigation shows the page to its user,
# it gives the other site nothing); everything else is same-origin only.
NAVIGABLE_PAGES = ("/", "/library", "/library/photo")


def _split_host(value: str) -> tuple[str, int | None]:
    """'[::1]:8765' -> ('::1', 8765); 'Localhost' -> ('localhost', None); junk -> ('', None)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port_text = value.partition(":")
    else:
        name, port_text = value, ""
    if port_text and not port_text.isdigit():
        return "", None
    return name.rstrip("."), int(port_text) if port_text else None


class AccessGuard:
    """ASGI middleware: the page answers only its own Host and Origin, and a token when set.

    - Host: one of the loopback names or `config.hosts`, on `config.port` (DNS rebinding: a
      foreign name that resolves to 127.0.0.1 gets 403). With a token the Host is not checked
      (a LAN server has names photod cannot know); the token does that job.
    - Origin / Sec-Fetch-Site: a request sent by another site's page (a form post, a fetch, an
      <img> of a thumbnail) gets 403; only a top-level navigation to a page is let through.
    - Token: `?token=` (then kept in an HttpOnly, SameSite=Strict cookie), the cookie, or
      `Authorization: Bearer`; anything else gets 401.
    """

    def __init__(self, app: Any, config: WebConfig) -> None:
        self.app = app
        self.token = config.token
        self.port = config.port
        self.hosts = {_split_host(h)[0] for h in (*LOOPBACK_HOSTS, *config.hosts) if h}
        self.hosts.discard("")

    async def __call__(self, scope: Any, receive: Receive, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            status, code, message = refusal
            log.warning(
                "web: refused %s %s (host %r, origin %r): %s",
                request.method,
                request.url.path,
                request.headers.get("host"),
                request.headers.get("origin"),
                message,
            )
            response: Response = PhotodJSONResponse(
                {"status": "error", "code": code, "error": message}, status_code=status
            )
            await response(scope, receive, send)
            return
        given = request.query_params.get("token")
        if self.token and given and request.method == "GET":
            # Keep the token in a cookie and drop it from the address bar and history.
            query = "&".join(
                f"{quote(k)}={quote(v)}"
                for k, v in request.query_params.multi_items()
                if k != "token"
            )
            target = request.url.path + (f"?{query}" if query else "")
            response = Response(status_code=303, headers={"Location": target})
            response.set_cookie(
                TOKEN_COOKIE, self.token, httponly=True, samesite="strict", path="/"
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, request: Request) -> tuple[int, str, str] | None:
        host_header = request.headers.get("host", "")
        name, port = _split_host(host_header)
        if self.token is None:
            if name not in self.hosts:
                return 403, "forbidden_host", f"this server does not answer to host {host_header!r}"
            if self.port is not None and (port or 80) != self.port:
                return 403, "forbidden_host", f"this server does not answer to host {host_header!r}"
        origin = request.headers.get("origin")
        site = request.headers.get("sec-fetch-site", "").lower()
        navigation = (
            request.method == "GET"
            and request.headers.get("sec-fetch-mode", "").lower() == "navigate"
            and request.url.path in NAVIGABLE_PAGES
        )
        if origin is not None and origin.lower() != f"{request.url.scheme}://{host_header}".lower():
            if not navigation:
                return 403, "forbidden_origin", f"requests from {origin!r} are not accepted"
        if site in ("cross-site", "same-site") and not navigation:
            return 403, "forbidden_origin", "requests from other sites' pages are not accepted"
        if self.token is not None and not self._has_token(request):
            return (
                401,
                "token_required",
                (
                    "this server needs its access token: open the address `photod serve` printed "
                    "(…/?token=…) or send `Authorization: Bearer TOKEN`"
                ),
            )
        return None

    def _has_token(self, request: Request) -> bool:
        assert self.token is not None
        auth = request.headers.get("authorization", "")
        candidates = [
            request.cookies.get(TOKEN_COOKIE, ""),
            auth[7:].strip() if auth.lower().startswith("bearer ") else "",
            request.query_params.get("token", ""),
        ]
        return any(c and hmac.compare_digest(c, self.token) for c in candidates)


# ---------------------------------------------------------------------------------------------
# The app


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return PhotodJSONResponse(
        {"status": "error", "code": exc.code, "error": exc.message}, status_code=exc.status
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """404/405 from routing as JSON under /api, plain text elsewhere."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return PhotodJSONResponse(
            {"status": "error", "code": "http", "error": exc.detail}, status_code=exc.status_code
        )
    return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain")


async def _photod_error(request: Request, exc: Exception) -> Response:
    """A library error outside an upload (the index cannot be read): logged, JSON 500."""
    assert isinstance(exc, PhotodError)
    log.error("web: %s: %s", request.url.path, exc)
    return PhotodJSONResponse(
        {"status": "error", "code": exc.code, "error": str(exc)}, status_code=500
    )


def create_app(config: WebConfig | None = None, scorer: Any = None) -> Starlette:
    """The web app; `scorer` (a `photod.scoring.Scorer`) is built lazily when not given."""
    config = config or WebConfig()
    routes = [
        Route("/", upload_page, methods=["GET"]),
        Route("/library", library_page, methods=["GET"]),
        Route("/library/photo", photo_page, methods=["GET"]),
        Route("/thumbs", thumbs, methods=["GET"]),
        Route("/api/score", api_score, methods=["POST"]),
        Route("/api/suggest", api_suggest, methods=["POST"]),
        Route("/api/photos", api_photos, methods=["GET"]),
        Route("/api/photo", api_photo, methods=["GET"]),
        Route("/api/status", api_status, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static"),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        ApiError: _api_error,
        HTTPException: _http_error,
        PhotodError: _photod_error,
    }
    if not any(isinstance(f, _UploadNameFilter) for f in log.filters):
        log.addFilter(_UploadNameFilter())
    app = Starlette(
        routes=routes,
        exception_handlers=handlers,
        middleware=[Middleware(AccessGuard, config=config)],
    )
    app.state.photod = _State(config, scorer)
    app.state.templates = _templates()
    if config.preload_model:
        app.state.photod.preload()
    return app
