"""Render results JSON files of `python -m benchmarks` as the Markdown of the README's section.

python -m benchmarks.report benchmarks/results/cpu-2core.json [more.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import fmt_stat


def machine_line(machine: dict[str, Any]) -> str:
    load = machine.get("load_average_at_start")
    end = machine.get("load_average_at_end")
    gpu = f", {machine['gpu']}" if machine.get("gpu") else ""
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine.get('memory_gib')} GiB{gpu}; "
        f"Python {machine['python']}, torch {machine['torch']}, Pillow {machine['pillow']} "
        f"(libjpeg-turbo {'yes' if machine.get('libjpeg_turbo') else 'no'}); "
        f"started {machine['started_utc']} UTC, load average {load} at start, {end} at end"
    )


def throughput_md(t: dict[str, Any]) -> list[str]:
    i = t["inputs"]
    s = t["settings"]
    lines = [
        f"End to end, {i['photos']} fresh JPEGs of {i['size']} ({i['megapixels']} MP, camera "
        f"EXIF) per run, new bytes and a new index every run; naive pipeline on "
        f"{i['naive_photos']} of them; model {s.get('model')}, batch {s['batch_size']}, "
        f"{s['decode_workers']} decode threads, torch threads {s['torch_threads']}:",
        "",
        "| input | pipeline | photod photos/s | naive photos/s | speedup | CPU ms/photo "
        "photod / naive | load (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, entry in t["kinds"].items():
        for mode, stats in entry["pipelines"].items():
            label = "`photod score`" if mode == "score" else f"process_paths, write {mode}"
            if "vs_no_write" in stats:
                label += f" ({stats['vs_no_write']}x of no write)"
            lines.append(
                f"| {kind}, {entry['mean_file_mb']} MB | {label} | "
                f"{fmt_stat(stats['photod_photos_per_s'])} | "
                f"{fmt_stat(stats['naive_photos_per_s'])} | **{stats['speedup']}x** | "
                f"{stats['photod_cpu_ms_per_photo']['median']} / "
                f"{stats['naive_cpu_ms_per_photo']['median']} ({stats['cpu_ratio']}x) | "
                f"{fmt_stat(entry['load_average_1min'])} |"
            )
    raw = t.get("raw")
    if raw:
        lines += [
            "",
            f"RAW: {raw['photos']} DNGs with a {raw['preview']} preview, ratings in sidecars: "
            f"laid out as cameras write them (+ a {raw.get('medium_preview')} preview) "
            f"{fmt_stat(raw['raw_sidecar_photos_per_s'])} photos/s, with the full-size preview "
            f"alone {fmt_stat(raw.get('raw_full_preview_only_sidecar_photos_per_s'))}, against "
            f"{fmt_stat(raw['jpeg_no_write_photos_per_s'])} for the same JPEGs without writes "
            f"(**{raw['raw_vs_jpeg']}x** and {raw.get('raw_full_preview_only_vs_jpeg')}x; "
            f"load {fmt_stat(raw['load_average_1min'])}).",
        ]
    lines += ["", "Each stage alone, in series (ms per photo, first kind):", ""]
    lines += ["| stage | ms/photo |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in t["breakdown_ms_per_photo"].items()]
    diff = t.get("score_difference_vs_naive", {})
    if diff.get("photos"):
        lines += [
            "",
            f"Scores of the fast path vs the naive one on the same {diff['photos']} photos: "
            f"mean |diff| {diff['mean_abs']}, max {diff['max_abs']} (1-5 scale).",
        ]
    return lines


def scoring_md(r: dict[str, Any]) -> list[str]:
    lines = [
        f"Scoring only (decode + model, no writes), {r['photos']} JPEGs of {r['size']} on "
        f"{r['device']} (threads 0 = photod's automatic choice):",
        "",
        "| configuration | photos/s |",
        "|---|---|",
    ]
    lines += [f"| {k} | {fmt_stat(v)} |" for k, v in r["photos_per_s"].items()]
    lines += [
        "",
        f"Largest score difference between configurations: {r['max_score_difference_between_configs']}.",
    ]
    return lines


def latency_md(r: dict[str, Any]) -> list[str]:
    lines = ["| latency | median (min-max) |", "|---|---|"]
    for entry in r["daemon"]:
        opts = entry["options"]
        settle = opts[opts.index("--settle-seconds") + 1] if "--settle-seconds" in opts else None
        label = f"`--settle-seconds {settle}`" if settle else "default settings"
        lines.append(
            f"| daemon: close -> rating readable by exiftool ({label}) | {fmt_stat(entry['seconds'], ' s')} |"
        )
    s = r["suggest"]
    if "skipped" in s:
        lines.append(f"| suggest | {s['skipped']} |")
    else:
        lines.append(f"| `suggest_photo` on a {r['size']} JPEG | {fmt_stat(s['seconds'], ' s')} |")
        lines.append(f"| candidates scored per suggestion | {fmt_stat(s['candidates'])} |")
        lines.append(f"| candidates per second | {fmt_stat(s['candidates_per_s'])} |")
    return lines


def memory_md(r: dict[str, Any]) -> list[str]:
    return [
        f"Burst of {r['files']} JPEGs of {r['size']} ({r['mean_file_mb']} MB each) written into a "
        f"watched folder in {r['seconds_to_write_burst']} s; all indexed after "
        f"{r['seconds_until_all_indexed']} s ({r['photos_per_s_during_burst']} photos/s). "
        f"Daemon RSS: {r['idle_rss_mb']} MB idle with the model loaded, peak "
        f"**{r['peak_rss_mb_vmhwm']} MB** (kernel VmHWM; {r['peak_rss_mb_sampled']} MB sampled "
        f"every 50 ms).",
    ]


def formats_md(r: dict[str, Any]) -> list[str]:
    lines = ["| format | size | MB | decode (ms) | score (photos/s) |", "|---|---|---|---|---|"]
    for name, e in r["formats"].items():
        lines.append(
            f"| {name} | {e['size']} | {e['mean_file_mb']} | {fmt_stat(e['decode_ms'])} | "
            f"{fmt_stat(e['score_photos_per_s'])} |"
        )
    return lines


RENDER = {
    "throughput": throughput_md,
    "scoring": scoring_md,
    "latency": latency_md,
    "memory": memory_md,
    "formats": formats_md,
}


def render(path: Path) -> str:
    data = json.loads(path.read_text())
    lines = [f"Machine: {machine_line(data['machine'])}.", ""]
    for name, func in RENDER.items():
        entry = data.get(name)
        if entry is None:
            continue
        lines.append(f"**{name}**")
        lines.append("")
        lines += func(entry) if "error" not in entry else [f"failed: {entry['error']}"]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    for path in paths:
        print(f"<!-- {path} -->")
        print(render(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
