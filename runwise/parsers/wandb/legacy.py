"""W&B side files: wandb 0.9 run directories, and any run directory without a `.wandb` log.

wandb 0.9 kept everything as text directly in the run directory (`dryrun-*` when offline):
`wandb-history.jsonl` (one row per line, bare NaN/Infinity), `wandb-summary.json`, `config.yaml`
(`key: {desc, value}`) and `wandb-metadata.json` (name, state, exitcode, startedAt, heartbeatAt).
Online runs of later clients keep copies of the last three under `files/`. PyYAML is not a
dependency, so `parse_config_yaml` reads the block-style subset wandb writes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from runwise.parsers.filetypes import WANDB_HISTORY
from runwise.parsers.wandb import records as rec
from runwise.parsers.wandb.columns import Columns, add_value
from runwise.parsers.wandb.segment import HIDDEN, Segment, finish_columns, flat_summary, newest_mtime


def _find(d: Path, name: str) -> Path | None:
    for p in (d / name, d / "files" / name):
        if p.is_file():
            return p
    return None


def _scalar(text: str) -> Any:
    t = text.strip()
    if t in ("", "null", "~"):
        return None
    if t in ("true", "false"):
        return t == "true"
    if t[:1] in "'\"" and t[-1:] == t[:1]:
        return t[1:-1].replace("''", "'") if t[0] == "'" else json.loads(t)
    if t[:1] in "[{":
        try:
            return json.loads(t)
        except ValueError:
            return t
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    return t


def parse_config_yaml(text: str) -> dict[str, Any]:
    """Parse the block-style YAML of wandb's config.yaml (mappings, `- ` lists, plain scalars)."""
    lines = [(len(ln) - len(ln.lstrip(" ")), ln.strip()) for ln in text.splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    pos = 0

    def block(indent: int) -> Any:
        nonlocal pos
        if pos < len(lines) and lines[pos][1].startswith("- ") or (pos < len(lines) and lines[pos][1] == "-"):
            items: list[Any] = []
            ind = lines[pos][0]
            while pos < len(lines) and lines[pos][0] == ind and lines[pos][1].startswith("-"):
                rest = lines[pos][1][1:].strip()
                pos += 1
                items.append(_scalar(rest) if rest else block(ind + 1))
            return items
        out: dict[str, Any] = {}
        while pos < len(lines) and lines[pos][0] >= indent:
            ind, ln = lines[pos]
            key, _, rest = ln.partition(":")
            pos += 1
            key = key.strip().strip("'\"")
            if rest.strip():
                out[key] = _scalar(rest)
            elif pos < len(lines) and (lines[pos][0] > ind or lines[pos][1].startswith("-")):
                out[key] = block(lines[pos][0])
            else:
                out[key] = None
        return out

    data = block(0)
    return data if isinstance(data, dict) else {}


def _config(d: Path) -> dict[str, Any]:
    p = _find(d, "config.yaml")
    if p is None:
        return {}
    raw = parse_config_yaml(p.read_text(encoding="utf-8", errors="replace"))
    out: dict[str, Any] = {}
    for key, item in raw.items():
        if key in ("wandb_version", "_wandb"):
            continue
        value = item.get("value") if isinstance(item, dict) and "value" in item else item
        rec.flatten(value, key, out)
    return out


def _history(d: Path, cols: Columns) -> None:
    p = _find(d, WANDB_HISTORY)
    if p is None:
        return
    with p.open("rb") as fp:
        for n, line in enumerate(fp):
            if not line.strip():
                continue
            try:
                row = rec.loads(line)
            except ValueError:
                cols.undecodable += 1  # a half-written last line of a live run
                continue
            if not isinstance(row, dict):
                continue
            step = row.get("_step", n)
            step = int(step) if isinstance(step, (int, float)) else n
            for key, value in row.items():
                if key in HIDDEN:
                    cols.add(key, np.array([step], np.int64), np.array([float(value)]))
                else:
                    add_value(cols, (key,), step, value)


def _time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def side_size(d: Path) -> int:
    """Bytes of the side files a run without a log is read from."""
    found = (_find(d, n) for n in (WANDB_HISTORY, "wandb-summary.json", "config.yaml"))
    return sum(p.stat().st_size for p in found if p is not None)


def side_name(d: Path) -> str:
    """The run name from wandb-metadata.json, if any (a small file: cheap)."""
    mp = _find(d, "wandb-metadata.json")
    if mp is None:
        return ""
    try:
        meta = json.loads(mp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


def read_side_files(d: Path, run_id: str) -> Segment:
    """A Segment from the text files of a run directory (no `.wandb` log needed)."""
    seg = Segment(dir=d, id=run_id)
    cols = Columns()
    _history(d, cols)
    finish_columns(seg, cols)
    seg.config = _config(d)
    sp = _find(d, "wandb-summary.json")
    if sp is not None:
        try:
            summary = rec.loads(sp.read_bytes())
        except ValueError:
            summary = {}
        if isinstance(summary, dict):
            seg.summary = flat_summary({(k,): v for k, v in summary.items()})
    if not seg.summary:
        seg.summary = {k: float(v[-1]) for k, (s, v) in seg.history.items() if v.size}
    mp = _find(d, "wandb-metadata.json")
    meta: dict[str, Any] = {}
    if mp is not None:
        try:
            meta = json.loads(mp.read_text(encoding="utf-8"))
        except ValueError:
            meta = {}
    seg.info = {"id": run_id, "name": meta.get("name") or "", "project": meta.get("project") or "",
                "job_type": meta.get("jobType") or "", "host": meta.get("host") or "", "tags": []}
    seg.start_time = _time(meta.get("startedAt"))
    beat = _time(meta.get("heartbeatAt"))
    seg.last_time = max(t for t in (seg.last_time, beat, seg.start_time, 0.0) if t is not None) or None
    if isinstance(meta.get("exitcode"), int):
        seg.exit_code = meta["exitcode"]
    if isinstance(meta.get("state"), str):
        seg.state = meta["state"]
    if seg.start_time is not None and seg.last_time is not None:
        seg.runtime = max(seg.runtime or 0.0, seg.last_time - seg.start_time)
    op = _find(d, "output.log")
    if op is not None:
        with op.open("rb") as fp:
            fp.seek(max(0, op.stat().st_size - 16384))
            seg.output = rec.console_tail([fp.read().decode("utf-8", "replace")])
    seg.size = side_size(d)
    seg.mtime = newest_mtime(d, None)
    if cols.undecodable:
        seg.warnings.append(f"{cols.undecodable} history line(s) could not be parsed and were skipped")
    return seg
