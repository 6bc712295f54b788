"""W&B cloud runs, read through `wandb.Api` (the optional extra `runwise[wandb]`): the `wandb-cloud` source.

References: `wandb-cloud:ENTITY/PROJECT/RUN_ID`, `cloud:PROJECT/RUN_ID`, or `cloud:RUN_ID` once the
project is set (`runwise api -p`, runwise.json `wandb_project` / `wandb_entity`, else the project and
entity of the newest local W&B run). The entity defaults to the logged-in user's.

A cloud run becomes the same `Run` as a local one: config and summary flattened, tags, notes, state,
and per metric the full-resolution history of every numeric key (at most MAX_KEYS keys), fetched with
`scan_history` a key at a time, PAGE_SIZE steps a page, at most MAX_PAGES pages a key (the run's
warnings say so when capped). `wandb` is imported only here, only when a cloud reference is used.

Versions and the cache: a run's entry carries its version (`extra["version"]`: a finished run's is
constant; a running one's is its state, history line count and heartbeat), which stands for the
files of a local run in runwise's identity (index.file_stats). So a loaded run is kept in memory and
in the disk cache (runs._read stores every cloud run) under its id and version; a second question
about a finished run reads the disk cache without asking W&B anything (`resolve` checks it first),
and a running run that grew is read on from the cached run: only the steps after its last cached
step are fetched (`refresh`; the resume state holds the cached columns and that step).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from runwise._flat import flatten, media_or_empty
from runwise.config import RunwiseConfig
from runwise.errors import CloudError, RunNotFound, UnsupportedFormat
from runwise.model import CRASHED, FAILED, FINISHED, RUNNING, UNKNOWN, Run, RunEntry, make_series
from runwise.parsers import Progress
from runwise.parsers.wandb_cloud import client

SOURCE = "wandb-cloud"
PREFIXES = ("wandb-cloud:", "cloud:")
MAX_KEYS = 64  # numeric keys whose history a load fetches
PAGE_SIZE = 1000  # steps per scan_history page
MAX_PAGES = 500  # pages per key: a key's history stops at MAX_PAGES * PAGE_SIZE steps
FINAL = (f"{SOURCE}:final", 0, 0)  # the version of a finished run: it no longer changes
_HIDDEN = ("_step", "_runtime", "_timestamp")
_STATES = {"finished": FINISHED, "failed": FAILED, "crashed": CRASHED, "killed": CRASHED, "preempted": CRASHED,
           "running": RUNNING, "pending": RUNNING}
_finished: set[str] = set()  # ids of runs this process found finished: their version needs no request
_detected: dict[str, tuple[str | None, str | None]] = {}  # project root -> (entity, project) of local runs


def is_cloud_ref(ref: str) -> bool:
    return ref.startswith(PREFIXES)


# ---------------------------------------------------------------- references


def _project(cfg: RunwiseConfig) -> tuple[str | None, str | None]:
    """(entity, project): configured, else those of the newest local W&B run (read once per process)."""
    if cfg.wandb_project:
        return cfg.wandb_entity, cfg.wandb_project
    root = str(cfg.root)
    if root not in _detected:
        _detected[root] = _local_project(cfg)
    entity, project = _detected[root]
    return cfg.wandb_entity or entity, project


def _local_project(cfg: RunwiseConfig) -> tuple[str | None, str | None]:
    from runwise import runs
    from runwise.errors import RunwiseError
    from runwise.parsers import wandb as local

    for e in sorted(local.discover(cfg), key=lambda e: e.mtime, reverse=True)[:5]:
        try:
            run = runs.load(e, cfg)
        except (RunwiseError, OSError):
            continue
        if run.project:
            return run.entity or None, run.project
    return None, None


def parse_ref(ref: str, cfg: RunwiseConfig) -> tuple[str | None, str, str]:
    """(entity or None, project, run id) of a cloud reference; a RunNotFound says what is missing."""
    rest = ref.split(":", 1)[1].strip().strip("/")
    parts = [p for p in rest.split("/") if p]
    if parts[-2:-1] == ["runs"]:  # ENTITY/PROJECT/runs/ID, as in a W&B URL
        del parts[-2]
    if not parts or len(parts) > 3:
        raise RunNotFound(ref, (), total=None)
    entity, project = _project(cfg)
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return entity, parts[0], parts[1]
    if not project:
        raise CloudError(f"{ref!r} names no W&B project: use ENTITY/PROJECT/RUN_ID, `runwise api -p PROJECT`, "
                         "or set wandb_project in runwise.json")
    return entity, project, parts[0]


def resolve(ref: str, cfg: RunwiseConfig) -> RunEntry:
    """The entry of a cloud reference. A finished run this process or the disk cache already holds
    costs no request; otherwise one request for the run's metadata (its version, and that it exists)."""
    entity, project, run_id = parse_ref(ref, cfg)
    if entity is None:
        entity = _default_entity(cfg)
    path = f"{entity}/{project}/{run_id}"
    entry = RunEntry(id=path, source=SOURCE, paths=(), extra={"remote": True, "version": FINAL})
    if path in _finished or _on_disk(entry, cfg):
        return entry
    return entry_of(fetch_run(cfg, entity, project, run_id), path)


def _on_disk(entry: RunEntry, cfg: RunwiseConfig) -> bool:
    from runwise import runs

    return cfg.cache_enabled and runs.cached_on_disk(entry, cfg)


def _default_entity(cfg: RunwiseConfig) -> str:
    api = client.api(cfg.wandb_timeout)
    entity = client.call(lambda: api.default_entity, cfg.wandb_timeout, what="finding your W&B entity")
    if not entity:
        raise CloudError("no W&B entity: give ENTITY/PROJECT/RUN_ID or set wandb_entity in runwise.json")
    return str(entity)


def fetch_run(cfg: RunwiseConfig, entity: str, project: str, run_id: str) -> Any:
    """The `wandb.apis.public.Run` of ENTITY/PROJECT/RUN_ID (one request)."""
    api = client.api(cfg.wandb_timeout)
    path = f"{entity}/{project}/{run_id}"

    def fetch() -> Any:
        api.flush()  # the Api keeps the runs it fetched: a running run's would never change
        return api.run(path)

    try:
        return client.call(fetch, cfg.wandb_timeout, what=f"run {path}")
    except RunNotFound:
        raise RunNotFound(f"{SOURCE}:{path}", ()) from None


def _epoch(stamp: Any) -> float | None:
    if not stamp:
        return None
    try:
        t = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()


def entry_of(api_run: Any, path: str) -> RunEntry:
    """The entry of a fetched run; its version says whether a cached read of it is still current."""
    state = str(getattr(api_run, "state", "") or "")
    heartbeat = _epoch(getattr(api_run, "heartbeat_at", None) or api_run._attrs.get("heartbeatAt")) or 0.0
    if state == "finished":
        _finished.add(path)
        version: tuple[str, int, int] = FINAL
    else:
        lines = int(api_run._attrs.get("historyLineCount") or 0)
        version = (f"{SOURCE}:{state}", lines, int(heartbeat * 1e9))
    return RunEntry(id=path, source=SOURCE, paths=(), name=str(api_run.name or ""), mtime=heartbeat,
                    extra={"remote": True, "version": version, "api_run": api_run, "name_final": True})


def list_entries(cfg: RunwiseConfig, *, state: str | None = None, limit: int = 50) -> list[RunEntry]:
    """The newest runs of the configured project (at most `limit`), of one state when given."""
    entity, project = _project(cfg)
    if not project:
        raise CloudError("no W&B project to list: `runwise api -p PROJECT`, or wandb_project in runwise.json")
    entity = entity or _default_entity(cfg)
    api = client.api(cfg.wandb_timeout)
    filters = {"state": state} if state else {}
    beat = client.Beat()

    def fetch() -> list[Any]:
        out = []
        for r in api.runs(f"{entity}/{project}", filters=filters, order="-created_at", per_page=min(limit, 50),
                          lazy=False):
            beat.beat()
            out.append(r)
            if len(out) >= limit:
                break
        return out

    found = client.call(fetch, cfg.wandb_timeout, what=f"runs of {entity}/{project}", beat=beat)
    return [entry_of(r, f"{entity}/{project}/{r.id}") for r in found]


# ---------------------------------------------------------------- the Source protocol


def discover(cfg: RunwiseConfig, notes: list[str] | None = None) -> list[RunEntry]:
    """None: cloud runs are listed only when asked (list_runs source='wandb-cloud'), never by local discovery."""
    return []


def load_file(path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    raise UnsupportedFormat("W&B cloud runs have no local file", path=str(path))


def display_name(entry: RunEntry, cfg: RunwiseConfig) -> str:
    return entry.name or load(entry, cfg).name


def _api_run(entry: RunEntry, cfg: RunwiseConfig) -> Any:
    api_run = entry.extra.get("api_run")
    if api_run is None:
        entity, project, run_id = entry.id.split("/", 2)
        api_run = entry.extra["api_run"] = fetch_run(cfg, entity, project, run_id)
    return api_run


def load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """Fetch the run: metadata, and the history of its numeric keys from step 0."""
    api_run = _api_run(entry, cfg)
    run = _metadata(api_run, entry)
    last = _upto(run, _last_step(api_run), 0)
    columns = _fetch(api_run, run, cfg, _numeric_keys(api_run, run), 0, progress, last)
    return _finish(run, columns, last)


def _upto(run: Run, last: int, min_step: int) -> int:
    """The last step a fetch from `min_step` reads: the run's last, or where MAX_PAGES pages end (then
    the run's warnings say so)."""
    upto = min(last, min_step + MAX_PAGES * PAGE_SIZE - 1)
    if upto < last:
        run.warnings.append(f"history fetched up to step {upto:,} of {last:,}: at most {MAX_PAGES} pages "
                            f"of {PAGE_SIZE:,} steps per key")
    return upto


def refresh(entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress | None = None) -> Run | None:
    """`previous` with the steps the run logged since its last fetched one; None (fetch whole) when the
    run's history went back (reset) or the state is not this run's."""
    state = previous.resume
    if not isinstance(state, dict) or state.get("cloud") != entry.id:
        return None
    api_run = _api_run(entry, cfg)
    last = int(state["last_step"])
    new_last = _last_step(api_run)
    if new_last < last:
        return None
    run = _metadata(api_run, entry)
    old: dict[str, tuple[Any, Any]] = dict(state["history"])
    keys = _numeric_keys(api_run, run)
    columns: dict[str, tuple[Any, Any]] = {}
    upto = _upto(run, new_last, last + 1)
    if new_last > last:
        columns = _fetch(api_run, run, cfg, [k for k in keys if k in old], last + 1, progress, upto)
        columns.update(_fetch(api_run, run, cfg, [k for k in keys if k not in old], 0, progress, upto))
    merged = {}
    for k in dict.fromkeys([*old, *columns]):
        parts = [p for p in (old.get(k), columns.get(k)) if p is not None]
        merged[k] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return _finish(run, merged, upto)


# ---------------------------------------------------------------- conversion


def _last_step(api_run: Any) -> int:
    try:
        return int(api_run.lastHistoryStep)
    except (TypeError, ValueError, AttributeError):
        return -1


def _metadata(api_run: Any, entry: RunEntry) -> Run:
    """The run model of a fetched run, without its history."""
    state = str(api_run.state or "")
    run = Run(id=entry.id, source=SOURCE, path=f"{SOURCE}:{entry.id}", name=str(api_run.name or ""),
              state=_STATES.get(state, UNKNOWN), project=str(api_run.project), entity=str(api_run.entity))
    run.group, run.job_type = str(api_run.group or ""), str(api_run.job_type or "")
    run.notes, run.tags = str(api_run.notes or ""), [str(t) for t in (api_run.tags or [])]
    config = {k: v for k, v in dict(api_run.config or {}).items() if not str(k).startswith("_wandb")}
    run.config = flatten(config, unwrap=True)
    summary = {k: v for k, v in dict(api_run.summary._json_dict or {}).items() if not str(k).startswith("_wandb")}
    flat = flatten(summary, whole=media_or_empty)
    run.summary = {k: f"<{v['_type']}>" if isinstance(v, dict) and "_type" in v else v for k, v in flat.items()}
    run.start_time = _epoch(api_run._attrs.get("createdAt"))
    runtime = run.summary.get("_runtime")
    run.runtime = float(runtime) if isinstance(runtime, (int, float)) and not isinstance(runtime, bool) else None
    run.last_write = entry.mtime or None
    for key, info in _history_keys(api_run).items():
        kinds = [str(t.get("type", "")) for t in info.get("typeCounts", []) if isinstance(t, dict)]
        if kinds and "number" not in kinds and not key.startswith("_"):
            run.non_numeric[key] = kinds[0]
    return run


def _history_keys(api_run: Any) -> dict[str, Any]:
    keys = (api_run._attrs.get("historyKeys") or {}).get("keys") or {}
    return keys if isinstance(keys, dict) else {}


def _numeric_keys(api_run: Any, run: Run) -> list[str]:
    """The keys whose history a load fetches (at most MAX_KEYS; the run's warnings say when cut)."""
    keys = []
    for key, info in sorted(_history_keys(api_run).items()):
        kinds = {str(t.get("type", "")) for t in info.get("typeCounts", []) if isinstance(t, dict)}
        if key not in _HIDDEN and kinds & {"number", "boolean", "bool", "nan"}:
            keys.append(key)
    if len(keys) > MAX_KEYS:
        run.warnings.append(f"history fetched for {MAX_KEYS} of {len(keys)} numeric keys (the first by name)")
        keys = keys[:MAX_KEYS]
    return keys


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)):  # bool too: W&B logs it as 0/1 as the local reader does
        return float(value)
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity", "nan", "inf", "-inf"):
        return float(value.replace("Infinity", "inf"))
    return None


def _fetch(
    api_run: Any, run: Run, cfg: RunwiseConfig, keys: list[str], min_step: int, progress: Progress | None,
    last: int,
) -> dict[str, tuple[Any, Any]]:
    """Each key's (steps int64, values float64) from `min_step` to `last`, PAGE_SIZE steps a page, MAX_PAGES a key."""
    if last < min_step or not keys:
        return {}
    stop = last + 1
    span = float(stop - min_step)
    out: dict[str, tuple[Any, Any]] = {}
    for i, key in enumerate(keys):
        beat = client.Beat()

        def scan(key: str = key, i: int = i, beat: client.Beat = beat) -> tuple[list[int], list[float]]:
            steps: list[int] = []
            values: list[float] = []
            for row in api_run.scan_history(keys=[key], page_size=PAGE_SIZE, min_step=min_step, max_step=stop):
                beat.beat()
                step, value = row.get("_step"), _number(row.get(key))
                if isinstance(step, int) and value is not None:
                    steps.append(step)
                    values.append(value)
                    if progress is not None and len(steps) % PAGE_SIZE == 0:
                        progress(i * span + step - min_step, len(keys) * span)
            return steps, values

        steps, values = client.call(scan, cfg.wandb_timeout, what=f"history of {key!r} of run {run.id}", beat=beat)
        if steps:
            out[key] = (np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64))
        if progress is not None:
            progress((i + 1) * span, len(keys) * span)
    return out


def _finish(run: Run, columns: dict[str, tuple[Any, Any]], upto: int) -> Run:
    """Build the run's history from its columns, and the state a refresh reads on from."""
    for key in sorted(columns):
        steps, values = columns[key]
        run.history[key] = make_series(key, steps, values, dedupe=True)
    hist = {k: (s.steps, s.values) for k, s in run.history.items()}
    run.resume = {"cloud": run.id, "last_step": upto, "history": hist}
    return run
