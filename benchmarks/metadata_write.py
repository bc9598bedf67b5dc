"""The cost and the fidelity of one rating write: the old pyexiv2 path against photod's surgical
writer, side by side in one process (so machine load hits both alike).

    python -m benchmarks metadata_write              # 8 MB camera JPEG, 7 runs
    python -m benchmarks metadata_write -- --runs 3 --megabytes 4

Cost: the whole `write_rating` call for an ~8 MB 24 MP camera JPEG (EXIF with a camera Rating):
before = what photod did until now (exiv2 reads the metadata, then a temp copy rewritten by
pyexiv2 — which re-encodes EXIF and maker notes — read back, scan data verified, fsync, rename);
after = today's `write_rating` (photod's own reader, the XMP segment replaced, the EXIF rating
bytes patched, the same temp/verify/fsync/rename). Also the modify step alone (temp file ready).

Fidelity (when ../shared/data/makers is there): the tags `exiftool -a -G1` reads that change,
besides photod's own fields, over the makers samples transplanted onto a real photo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common, inputs

OWNED = ("SourceFile", "System:", "ExifTool:", "XMP-photod:", "XMP-x:XMPToolkit",
         "XMP-xmp:Rating", "IFD0:Rating", "IFD0:RatingPercent")  # fmt: skip


def _camera_jpeg(path: Path, megabytes: float, size: tuple[int, int] = (6000, 4000)) -> Path:
    """A camera-like JPEG (24 MP by default) of about `megabytes` (grain raises the size) with a
    camera's Rating 0 in IFD0."""
    import struct

    pixels = inputs.camera_picture(3, size)
    quality, data = 92, b""
    for quality in (92, 95, 97, 98, 99):
        data = inputs.encode_jpeg(pixels, quality)
        if len(data) >= megabytes * 1e6:
            break
    app1 = bytearray(inputs.exif_block(1))
    # the camera's own Rating/RatingPercent, so both paths patch EXIF too
    from PIL import Image

    exif = Image.Exif()
    exif.load(bytes(app1[4:]))
    exif[0x4746], exif[0x4749] = 0, 0
    payload = exif.tobytes()
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    path.write_bytes(inputs.splice_exif(data, app1))
    return path


def _old_modify(path: Path, xmp: dict, exif: dict) -> None:
    """photod's previous writer: pyexiv2 rewrites the file (EXIF re-encoded), then reads back."""
    from photod.metadata import xmp as X

    pyexiv2 = X.exiv2()
    with X._exiv2_lock:
        image = pyexiv2.Image(str(path))
        try:
            image.modify_xmp(xmp)
            image.modify_exif(exif)
        finally:
            image.close()
        check = pyexiv2.Image(str(path))
        try:
            check.read_xmp()
        finally:
            check.close()


def _old_write(path: Path, info: Any) -> None:
    from photod import __version__
    from photod.metadata import xmp as X
    from photod.metadata.atomic import atomic_rewrite

    X._exiv2_read(path, with_exif=True)  # the user-rating check read the photo with exiv2
    fields = X.rating_fields(info.score, info.stars, info.model, info.scored_at or "", None, {},
                             __version__)  # fmt: skip

    def verify(original: Path, modified: Path) -> None:  # the old check: scan data only
        if X.jpeg_scan_data(original) != X.jpeg_scan_data(modified):
            raise RuntimeError("scan data changed")

    atomic_rewrite(path, lambda tmp: _old_modify(tmp, fields, X.exif_rating_fields(info.stars)),
                   verify)  # fmt: skip


def _new_write(path: Path, info: Any) -> None:
    from photod.metadata import write_rating

    outcome = write_rating(path, info, force=True)
    if outcome.status != "written":
        raise RuntimeError(f"not written: {outcome}")


def cost(
    workdir: Path, megabytes: float, runs: int, size: tuple[int, int] = (6000, 4000)
) -> dict[str, Any]:
    from photod.metadata import RatingInfo
    from photod.metadata import xmp as X

    source = _camera_jpeg(workdir / "camera.jpg", megabytes, size)
    result: dict[str, Any] = {"file_mb": round(source.stat().st_size / 1e6, 2),
                              "size": f"{size[0]}x{size[1]}"}  # fmt: skip
    times: dict[str, list[float]] = {"old_write": [], "new_write": [],
                                     "old_modify": [], "new_modify": []}  # fmt: skip
    fields = X.rating_fields(3.3, 4, "bench", "2026-12-01T00:00:00+00:00", None, {}, "0")
    exif = X.exif_rating_fields(4)
    for run in range(runs):
        info = RatingInfo(score=3.3, stars=1 + run % 5, model="bench")
        for name, write in (("old", _old_write), ("new", _new_write)):  # interleaved: same load
            target = workdir / f"{name}.jpg"
            shutil.copyfile(source, target)
            seconds, _ = common.time_call(lambda w=write, t=target, i=info: w(t, i))
            times[f"{name}_write"].append(seconds)
            shutil.copyfile(source, target)
            modify = _old_modify if name == "old" else X.modify
            seconds, _ = common.time_call(lambda m=modify, t=target: m(t, fields, exif))
            times[f"{name}_modify"].append(seconds)
    for key, values in times.items():
        result[key + "_ms"] = common.summary([1000 * v for v in values], 1)
    result["write_speedup"] = round(
        result["old_write_ms"]["median"] / result["new_write_ms"]["median"], 2
    )
    result["modify_speedup"] = round(
        result["old_modify_ms"]["median"] / result["new_modify_ms"]["median"], 2
    )
    return result


def fidelity(workdir: Path) -> dict[str, Any] | None:
    """Tags lost or changed on the makers samples transplanted onto a real photo, per writer."""
    makers = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "makers"
    exiftool = shutil.which("exiftool")
    if not makers.is_dir() or exiftool is None:
        return None
    from PIL import Image

    from photod.metadata import RatingInfo

    samples = sorted(makers.iterdir())
    pixels = inputs.camera_picture(0, (600, 400))
    out: dict[str, Any] = {"files": len(samples)}
    for name, write in (("old", _old_write), ("new", _new_write)):
        folder = workdir / f"fidelity-{name}"
        folder.mkdir(exist_ok=True)
        files = []
        args: list[str] = []
        for sample in samples:
            target = folder / f"{sample.stem}-{sample.suffix[1:].lower()}.jpg"
            Image.fromarray(pixels).save(target, quality=90)
            args += ["-TagsFromFile", str(sample), "-all:all", "-overwrite_original", "-q", "-q",
                     str(target), "-execute"]  # fmt: skip
            files.append(target)
        (folder / "args").write_text("\n".join(args) + "\n")
        subprocess.run([exiftool, "-@", str(folder / "args")], capture_output=True, check=True)

        def read(paths: list[Path]) -> dict[str, dict]:
            text = subprocess.run([exiftool, "-j", "-a", "-G1", "-n", *map(str, paths)],
                                  capture_output=True, text=True).stdout  # fmt: skip
            return {d["SourceFile"]: d for d in json.loads(text)}

        before = read(files)
        failed = 0
        for path in files:
            try:
                write(path, RatingInfo(score=3.3, stars=4, model="bench"))
            except Exception:  # the old path refuses some files outright
                failed += 1
        after = read(files)
        changed_files, changed_tags = 0, 0
        for path in map(str, files):
            keys = {k for k in set(before[path]) | set(after[path])
                    if before[path].get(k) != after[path].get(k) and not k.startswith(OWNED)}  # fmt: skip
            changed_files += bool(keys)
            changed_tags += len(keys)
        out[name] = {"files_changed": changed_files, "tags_changed": changed_tags,
                     "refused": failed}  # fmt: skip
    return out


def table(result: dict[str, Any]) -> str:
    c = result["cost"]
    rows = [
        ["write_rating (whole call)", common.fmt_stat(c["old_write_ms"], " ms"),
         common.fmt_stat(c["new_write_ms"], " ms"), f"{c['write_speedup']}x"],
        ["modify step only", common.fmt_stat(c["old_modify_ms"], " ms"),
         common.fmt_stat(c["new_modify_ms"], " ms"), f"{c['modify_speedup']}x"],
    ]  # fmt: skip
    text = f"{c['file_mb']} MB {c['size']} camera JPEG\n"
    text += common.format_table(rows, ["", "pyexiv2 (before)", "surgical (after)", "speed-up"])
    f = result.get("fidelity")
    if f:
        rows = [[name, f[key]["files_changed"], f[key]["tags_changed"], f[key]["refused"]]
                for name, key in (("pyexiv2 (before)", "old"), ("surgical (after)", "new"))]  # fmt: skip
        text += f"\n\nmakers samples on a real photo ({f['files']} files): tags changed\n"
        text += common.format_table(rows, ["writer", "files changed", "tags changed", "refused"])
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks metadata_write")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--megabytes", type=float, default=8.0)
    parser.add_argument("--size", default="6000x4000", help="JPEG size WxH")
    parser.add_argument("--no-fidelity", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="photod-bench-meta-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        result: dict[str, Any] = {"machine": common.machine_info("cpu")}
        width, height = (int(v) for v in args.size.lower().split("x"))
        result["cost"] = cost(work, args.megabytes, args.runs, (width, height))
        result["fidelity"] = None if args.no_fidelity else fidelity(work)
        result["benchmark_seconds"] = round(time.perf_counter() - started, 1)
        result["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(table(result), flush=True)
    if args.out:
        common.write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
