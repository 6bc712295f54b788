"""Project roots and TensorBoard directories on object storage (`s3://bucket/prefix`, `gs://bucket/prefix`),
read through a local mirror so every source reads local files as it always does.

Where: `<cache dir>-remote/<16 hex of the URL>/root/` (beside the cache directory, as the run index is);
`manifest.json` beside `root/` records per object its size, ETag and LastModified. `runwise cache clear`
leaves it; delete the `-remote` directory to drop every mirror.

Sync (`sync`): list the objects under the prefix (fsspec `find`, with sizes, ETags and times); fetch each
object that is new or whose size or ETag changed, streamed to a temporary file (fsspec `get_file`) renamed
into place (an object is never held whole in memory); remove the files of objects that are gone. An
object that only grew (same name, larger, and its old bytes unchanged: the last OVERLAP of them are fetched
again and compared, and when the store gives the object's MD5 the grown file must match it) has only its
appended tail fetched, in ranged reads of CHUNK bytes, and appended: a live run's growing log costs what it
appended. A file's mtime is the object's LastModified with the fraction of a second
taken from its ETag: the parse cache and the run index, keyed by size and mtime, see an object
rewritten to the same size as changed.

The listing and the downloads run in the store worker (runwise.remote_worker), a child process holding the
store's SDK, when one can be started; `begin` asks it to sync without waiting (the CLI and the MCP server do
so at start-up), `sync` takes its answer. Where no child can be started, this process syncs by itself.

Syncs of a mirror are serialised (a lock file, so two processes never append one tail twice), and a
process syncs a URL at most once per INTERVAL seconds: many tool calls in a row list the bucket once (and
a store that cannot be reached is not waited on again within that time: the same error is given).

Credentials are never read from runwise.json: each SDK finds its own in its standard environment (s3fs:
AWS_ACCESS_KEY_ID / AWS_PROFILE / AWS_ENDPOINT_URL ...; gcsfs: GOOGLE_APPLICATION_CREDENTIALS ...).
fsspec and the store's package (`pip install runwise[remote]`) are imported only when a URL is used, and only in the
process that syncs (the store worker, where one can be started).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from runwise._bounded import Bounded
from runwise._files import locked, replacing
from runwise.errors import ConfigError

if TYPE_CHECKING:
    from runwise.config import RunwiseConfig

log = logging.getLogger("runwise.remote")

SCHEMES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}  # URL scheme -> fsspec's package for it
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$")
CHUNK = 8 * 1024 * 1024  # bytes per ranged read
OVERLAP = 4096  # old last bytes fetched again to check that an object only grew
INTERVAL = 2.0  # seconds a process goes on using a mirror before listing the bucket again
MANIFEST = "manifest.json"
LOCK = "sync.lock"
_FORMAT = 1
_MD5 = re.compile(r"[0-9a-fA-F]{32}")

_last: dict[Path, tuple[float, str | None]] = {}  # mirror -> (monotonic time of its last sync here, its error)
_locks: dict[Path, threading.Lock] = {}
_SDK_ENV = ("AWS_", "BOTO_", "GOOGLE_", "GCS", "GCLOUD", "CLOUDSDK_", "FSSPEC_")  # what the stores' SDKs read
_STREAMED: dict[str, dict[str, Any]] = {"s3fs": {"max_concurrency": 1}}  # get_file's options: one stream
_filesystems: Bounded[tuple[object, ...], Any] = Bounded(8)
_hashes: Bounded[str, tuple[int, Any]] = Bounded(10_000)  # mirrored file -> (its size, the MD5 of its bytes)
_guard = threading.Lock()


def normalise(url: str) -> str:
    """`url` with a known scheme and no trailing slash; ConfigError for another scheme or no bucket."""
    m = _URL.match(url.strip())
    if m is None or m["scheme"].lower() not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ConfigError(f"cannot read {url!r}: runwise reads object storage at {known} URLs only")
    rest = m["rest"].strip("/")
    if not rest:
        raise ConfigError(f"{url!r} names no bucket (expected {m['scheme']}://BUCKET/PREFIX)")
    return f"{m['scheme'].lower()}://{rest}"


def mirror_dir(url: str, cache_dir: Path) -> Path:
    """The mirror of `url` (its files under `root/`): in `<cache dir>-remote/`, named by a digest of the URL."""
    digest = hashlib.sha256(normalise(url).encode()).hexdigest()[:16]
    return cache_dir.with_name(cache_dir.name + "-remote") / digest


def local_root(url: str, cache_dir: Path) -> Path:
    """The local directory that stands for `url`: its mirror's `root/`."""
    return mirror_dir(url, cache_dir) / "root"


@dataclass
class Synced:
    """What one sync did."""

    listed: int = 0  # objects under the prefix
    fetched: int = 0  # objects fetched whole
    grown: int = 0  # objects whose appended tail only was fetched
    removed: int = 0  # files of objects gone from the store
    bytes: int = 0  # bytes received from the store
    failed: list[str] = field(default_factory=list)  # objects not mirrored, each with why


def filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for `url` and the path inside it; a one-line ConfigError if its package is missing.

    One filesystem per scheme and SDK environment is kept (making one costs the SDK's client set-up, most of
    a second): a change to the environment (other credentials, another endpoint) makes a new one.
    """
    url = normalise(url)
    scheme = url.split("://", 1)[0]
    package = SCHEMES[scheme]
    key = (package, tuple(sorted(sdk_env().items())))
    try:
        import fsspec
    except ImportError as exc:
        raise ConfigError(f"reading {scheme}:// needs fsspec and {package}: pip install 'runwise[remote]'") from exc
    fs = _filesystems.get(key)
    try:
        if fs is None:
            fs = fsspec.filesystem(fsspec.core.split_protocol(url)[0], skip_instance_cache=True)
            _filesystems.put(key, fs)
        path = fs._strip_protocol(url)
    except ImportError as exc:
        raise ConfigError(f"reading {scheme}:// needs {package}: pip install 'runwise[remote]'") from exc
    except Exception as exc:  # a malformed URL, credentials the SDK could not parse
        raise ConfigError(f"cannot open {url}: {_reason(exc)}") from exc
    return fs, str(path).rstrip("/")


def _reason(exc: BaseException) -> str:
    """One line saying why a request to the store failed."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    name = type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return f"not found ({text})"[:300]
    if isinstance(exc, PermissionError) or "credential" in text.lower() or "AccessDenied" in text:
        return f"access denied: {text}; the store's SDK reads credentials from its usual environment"[:300]
    return f"{name}: {text}"[:300]


def sync(url: str, cache_dir: Path, *, force: bool = False) -> Synced | None:
    """Bring the mirror of `url` up to date with the store; None when it was synced under INTERVAL ago.

    The store worker (runwise.remote_worker) does the listing and the downloads when a child process can be
    started (its answer to a `begin` made earlier is taken if there is one); otherwise this process does.
    Raises ConfigError (one line) when the store cannot be listed: no such bucket, no credentials, no network,
    fsspec or the store's package not installed.
    """
    from runwise import remote_worker

    url = normalise(url)
    mirror = mirror_dir(url, cache_dir)
    with _guard:
        lock = _locks.setdefault(mirror, threading.Lock())
    with lock:
        last = _last.get(mirror)
        if not force and last is not None and time.monotonic() - last[0] < INTERVAL:
            if last[1] is not None:  # it failed just now: the same answer, without waiting on the store again
                raise ConfigError(last[1])
            return None
        try:
            done = remote_worker.sync(url, cache_dir, sdk_env())
            if done is None:  # no worker process here
                done = sync_here(url, cache_dir)
        except ConfigError as exc:
            _last[mirror] = (time.monotonic(), str(exc))
            raise
        _last[mirror] = (time.monotonic(), None)
        return done


def begin(url: str, cache_dir: Path, *, last: bool = False) -> None:
    """Start syncing the mirror of `url` in the store worker now, without waiting: the next `sync` takes its
    answer. Nothing when it was synced here under INTERVAL ago or no worker process can be started. With
    `last`, the worker exits once it has answered (a command that reads once frees its memory at once)."""
    from runwise import remote_worker

    url = normalise(url)
    previous = _last.get(mirror_dir(url, cache_dir))
    if previous is None or time.monotonic() - previous[0] >= INTERVAL:
        remote_worker.begin(url, cache_dir, sdk_env(), last=last)


def sdk_env() -> dict[str, str]:
    """The environment variables the stores' SDKs read (credentials, endpoints, profiles), as set now."""
    return {k: v for k, v in os.environ.items() if k.startswith(_SDK_ENV)}


def sync_here(url: str, cache_dir: Path) -> Synced:
    """Sync the mirror of `url` in this process (what the store worker runs); ConfigError in one line."""
    url = normalise(url)
    mirror = mirror_dir(url, cache_dir)
    fs, prefix = filesystem(url)
    try:
        mirror.mkdir(parents=True, exist_ok=True)
        with locked(mirror / LOCK):
            return _sync(fs, url, prefix, mirror)
    except OSError as exc:  # the mirror itself cannot be written (a full disk, a read-only cache directory)
        raise ConfigError(f"cannot mirror {url} into {mirror}: {_reason(exc)}") from exc


def _sync(fs: Any, url: str, prefix: str, mirror: Path) -> Synced:
    root = mirror / "root"
    root.mkdir(exist_ok=True)
    manifest = _read_manifest(mirror / MANIFEST, url)
    objects = _list(fs, url, prefix)
    done = Synced(listed=len(objects))
    new: dict[str, dict[str, Any]] = {}
    try:
        for rel, obj in sorted(objects.items()):
            old = manifest.get(rel)
            path = root / rel
            if old is not None and _same(old, obj) and _intact(path, old):
                new[rel] = old
                continue
            try:
                if old is not None and _grown(old, obj) and _intact(path, old) and _append_tail(
                        fs, obj, path, old, done):
                    done.grown += 1
                else:
                    _fetch(fs, obj, path, mirror, done)
                    done.fetched += 1
                os.utime(path, ns=(obj["mtime_ns"], obj["mtime_ns"]))
            except OSError as exc:  # this object only (rewritten while read, a name that is also a folder ...)
                done.failed.append(f"{rel}: {_reason(exc)}")
                if old is not None:
                    new[rel] = old  # its file, if touched, no longer matches: fetched whole next time
                continue
            new[rel] = {k: obj[k] for k in ("size", "etag", "mtime_ns", "md5")}
    except BaseException:  # keep what was fetched; a file left half-done fails `_intact` next time
        _write_manifest(mirror / MANIFEST, url, {**manifest, **new})
        raise
    for rel in sorted(set(manifest) - set(objects)):
        with contextlib.suppress(OSError):
            (root / rel).unlink()
            done.removed += 1
        _prune_dirs((root / rel).parent, root)
    _write_manifest(mirror / MANIFEST, url, new)
    return done


def _list(fs: Any, url: str, prefix: str) -> dict[str, dict[str, Any]]:
    """The objects under `prefix` by their path relative to it: size, ETag, mtime (ns) and full path."""
    try:
        fs.invalidate_cache()  # s3fs / gcsfs keep listings: a growing object must be seen as it is now
        found = fs.find(prefix, detail=True)
        if not found:  # an empty prefix or no bucket: tell them apart
            bucket = prefix.split("/", 1)[0]
            if not fs.exists(bucket):
                raise FileNotFoundError(f"no bucket {bucket!r}")
    except Exception as exc:
        raise ConfigError(f"cannot list {url}: {_reason(exc)}") from exc
    out: dict[str, dict[str, Any]] = {}
    for full, info in found.items():
        if info.get("type", "file") != "file" or full.endswith("/"):
            continue  # a "directory" marker
        rel = _relative(str(full), prefix)
        if rel is None:
            continue
        etag = str(info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("generation") or "")
        etag = etag.strip('"')
        size = int(info.get("size") or 0)
        out[rel] = {"full": str(full), "size": size, "etag": etag, "mtime_ns": _mtime_ns(info, etag),
                    "md5": _content_md5(info, etag)}
    return out


def _content_md5(info: dict[str, Any], etag: str) -> str | None:
    """The MD5 of the object's bytes (hex) when the store tells it: GCS's md5Hash, or an S3 ETag of one part."""
    md5 = info.get("md5Hash")
    if isinstance(md5, str):
        with contextlib.suppress(ValueError):
            raw = base64.b64decode(md5, validate=True)
            return raw.hex() if len(raw) == 16 else None
    return etag.lower() if _MD5.fullmatch(etag) else None  # a multipart upload's ETag ends in -N: not an MD5


def _relative(full: str, prefix: str) -> str | None:
    """`full` relative to `prefix` as a safe relative path (no `..`, no empty or absolute parts), else None."""
    if prefix and not full.startswith(prefix.rstrip("/") + "/"):
        return None
    rel = full[len(prefix.rstrip("/")) + 1:] if prefix else full
    parts = PurePosixPath(rel).parts
    if not parts or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts) or rel.startswith("/"):
        return None
    return "/".join(parts)


def _mtime_ns(info: dict[str, Any], etag: str) -> int:
    """The object's LastModified (whole seconds) plus a fraction of a second taken from its ETag."""
    when = info.get("LastModified") or info.get("updated") or info.get("mtime") or info.get("last_modified")
    seconds = 0.0
    if isinstance(when, datetime):
        seconds = when.timestamp()
    elif isinstance(when, (int, float)):
        seconds = float(when)
    elif isinstance(when, str):
        with contextlib.suppress(ValueError):
            seconds = datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
    fraction = int(hashlib.sha256(etag.encode()).hexdigest()[:8], 16) % 1_000_000 * 1000  # below one second
    return int(seconds) * 1_000_000_000 + fraction


def _same(old: dict[str, Any], obj: dict[str, Any]) -> bool:
    return bool(old.get("size") == obj["size"] and old.get("etag") == obj["etag"])


def _grown(old: dict[str, Any], obj: dict[str, Any]) -> bool:
    return isinstance(old.get("size"), int) and 0 < old["size"] < obj["size"]


def _intact(path: Path, old: dict[str, Any]) -> bool:
    """Whether the mirrored file is still as the last sync left it (nobody removed or changed it)."""
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_size == old.get("size") and st.st_mtime_ns == old.get("mtime_ns")


def _ranges(start: int, end: int) -> Iterator[tuple[int, int]]:
    for a in range(start, end, CHUNK):
        yield a, min(end, a + CHUNK)


def _get(fs: Any, obj: dict[str, Any], start: int, end: int, done: Synced) -> bytes:
    """Bytes [start, end) of the object (one ranged read)."""
    data = bytes(fs.cat_file(obj["full"], start=start, end=end))
    done.bytes += len(data)
    if len(data) != end - start:
        raise OSError(f"{obj['full']}: asked for {end - start:,} bytes at {start:,}, got {len(data):,}")
    return data


def _fetch(fs: Any, obj: dict[str, Any], path: Path, mirror: Path, done: Synced) -> None:
    """Fetch the whole object into `path` through a temporary file renamed into place.

    fsspec's `get_file` streams it to disk: s3fs and gcsfs read one response in small blocks, other stores
    read ranged blocks; never whole in memory. (s3fs's concurrent parts, its default for large objects, were
    slower against a local server and held several parts in memory at once.)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".fetch.", suffix=".tmp", dir=mirror)
    os.close(fd)
    try:
        fs.get_file(obj["full"], tmp, **_STREAMED.get(type(fs).__module__.split(".")[0], {}))
        got = os.path.getsize(tmp)
        done.bytes += got
        if got != obj["size"]:  # rewritten since it was listed: the next sync sees its new size
            raise OSError(f"{obj['full']}: listed with {obj['size']:,} bytes, fetched {got:,}")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _append_tail(fs: Any, obj: dict[str, Any], path: Path, old: dict[str, Any], done: Synced) -> bool:
    """Append the object's bytes past the mirrored file's end; False if its old bytes changed (the caller then
    fetches it whole). The old last OVERLAP bytes are fetched again and compared; when the store gives the
    object's MD5 (`_content_md5`), the whole file must match it too."""
    size = int(old["size"])
    overlap = min(OVERLAP, size)
    md5 = _md5_of(path, size) if obj.get("md5") else None
    with path.open("r+b") as fp:
        fp.seek(size - overlap)
        mine = fp.read(overlap)
        first_end = min(obj["size"], size + CHUNK)
        head = _get(fs, obj, size - overlap, first_end, done)
        if head[:overlap] != mine:
            return False
        fp.seek(size)
        fp.write(head[overlap:])
        if md5 is not None:
            md5.update(head[overlap:])
        for a, b in _ranges(first_end, obj["size"]):
            data = _get(fs, obj, a, b, done)
            fp.write(data)
            if md5 is not None:
                md5.update(data)
    if md5 is not None:
        if md5.hexdigest() != obj["md5"]:
            log.debug("%s: changed before its old end, fetched whole", obj["full"])
            return False
        _hashes.put(str(path), (obj["size"], md5))
    return True


def _md5_of(path: Path, size: int) -> Any:
    """A running MD5 of the file's first `size` bytes: kept from the last fetch in this process, else read."""
    kept = _hashes.get(str(path))
    if kept is not None and kept[0] == size:
        return kept[1].copy()
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fp:
        left = size
        while left > 0 and (block := fp.read(min(CHUNK, left))):
            h.update(block)
            left -= len(block)
    return h


def _prune_dirs(d: Path, root: Path) -> None:
    """Remove `d` and its parents up to `root` while they are empty."""
    while d != root and root in d.parents:
        try:
            d.rmdir()
        except OSError:
            return
        d = d.parent


def _read_manifest(path: Path, url: str) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("url") != url:
        return {}
    objects = data.get("objects")
    return {k: v for k, v in objects.items() if isinstance(v, dict)} if isinstance(objects, dict) else {}


def _write_manifest(path: Path, url: str, objects: dict[str, dict[str, Any]]) -> None:
    body = json.dumps({"format": _FORMAT, "url": url, "objects": objects}, sort_keys=True)
    with replacing(path) as out:
        out.write(body.encode())


def refresh(cfg: RunwiseConfig) -> list[str]:
    """Sync every mirror `cfg` reads (its root, `tensorboard_dirs` URLs) that is due; one note per one that failed.

    A mirror that cannot be refreshed is read as the last sync left it (an empty directory if none did).
    """
    notes = dict(cfg.remote_notes)  # the root's sync when the configuration was read, if it failed
    cfg.remote_notes.clear()
    for url in cfg.remotes:
        if url in notes:
            continue
        try:
            done = sync(url, cfg.cache_dir)
        except ConfigError as exc:
            notes[url] = f"{url} not refreshed: {exc}"
            continue
        if done is not None and done.failed:
            notes[url] = failed_note(url, done)
    return list(notes.values())


def failed_note(url: str, done: Synced) -> str:
    """One line on the objects a sync could not mirror."""
    n = len(done.failed)
    return f"{url}: {n} object{'s' if n > 1 else ''} not mirrored ({done.failed[0]}{', ...' if n > 1 else ''})"
