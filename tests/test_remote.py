"""Project roots on object storage (runwise.remote), against moto's S3 server on 127.0.0.1: no cloud.

The committed fixtures of every source (W&B, TensorBoard, JSONL, MLflow, DVCLive) are copied into one
local project and uploaded under s3://bucket/proj/; every tool's answer on the s3:// root must equal its
answer on the local copy. Then the mirror itself: a grown object costs its tail only, an object rewritten
to the same size is fetched again, a deleted one goes, and what is missing is said in one line.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters  # at collection: its default errlog is the real stderr

from runwise import remote, remote_worker, runs
from runwise.config import RunwiseConfig
from runwise.errors import ConfigError
from runwise.tools import TOOLS
from tests.conftest import ask, training_rows, write_jsonl, write_project

moto_server = pytest.importorskip("moto.server", reason="moto[server] is needed for the object storage tests")
pytest.importorskip("s3fs", reason="s3fs is needed for the object storage tests")
boto3 = pytest.importorskip("boto3")

DATA = Path(__file__).parent / "data"
BUCKET = "bucket"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Dummy credentials and moto's endpoint, through the SDK's own environment variables only."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setattr(remote, "INTERVAL", 0.0)  # every discovery lists the bucket again
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    runs.clear_cache()


def _client() -> Any:
    return boto3.client("s3")


def _bucket(name: str = BUCKET) -> None:
    s3 = _client()
    if name not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=name)


def _upload(local: Path, prefix: str) -> None:
    _bucket()
    s3 = _client()
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(local).as_posix()}")


def _every_source(root: Path) -> Path:
    """One project with the committed fixtures of every source, its files an hour old (finished runs)."""
    shutil.copytree(DATA / "wandb", root / "wandb")
    for d in ("runs", "logs", "lightning_logs"):
        shutil.copytree(DATA / "tensorboard" / d, root / d, dirs_exist_ok=True)
    write_project(root)  # logs/run_a.jsonl, logs/run_b.jsonl and runwise.json
    shutil.copy(DATA / "mlflow" / "mlflow.db", root / "mlflow.db")
    shutil.copytree(DATA / "mlflow" / "mlruns", root / "mlruns")
    shutil.copytree(DATA / "dvclive" / "project", root, dirs_exist_ok=True)
    shutil.copytree(DATA / "hf" / "project", root, dirs_exist_ok=True)
    shutil.copytree(DATA / "csv" / "project", root, dirs_exist_ok=True)
    (root / "trackio").mkdir()
    for db in (DATA / "trackio").glob("*.db"):
        shutil.copy(db, root / "trackio" / db.name)
    return root


def _same_times(local: Path, mirror: Path) -> None:
    """Give the local copy the times the mirror's files (under `mirror`) have: the objects' LastModified."""
    for p in mirror.rglob("*"):
        if p.is_file():
            st = p.stat()
            os.utime(local / p.relative_to(mirror), ns=(st.st_mtime_ns, st.st_mtime_ns))


def _local_cfg(root: Path, tmp_path: Path) -> RunwiseConfig:
    return RunwiseConfig.load(root, env={**os.environ, "RUNWISE_CACHE_DIR": str(tmp_path / "local-cache")})


@pytest.fixture
def uploaded(tmp_path: Path) -> tuple[Path, str]:
    local = _every_source(tmp_path / "proj")
    prefix = f"every-{tmp_path.name}"
    _upload(local, prefix)
    return local, f"s3://{BUCKET}/{prefix}"


def test_every_tool_answers_on_an_s3_root_as_on_the_local_copy(
    uploaded: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, url = uploaded
    s3_cfg = RunwiseConfig.load(url)
    assert s3_cfg.remote_url == url and s3_cfg.root == remote.local_root(url, s3_cfg.cache_dir).resolve()
    _same_times(local, s3_cfg.root)
    local_cfg = _local_cfg(local, tmp_path)
    # the mirror is synced; "last write 28s ago" must not become "29s ago" between the two answers
    monkeypatch.setattr(remote, "INTERVAL", 3600.0)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    listed = ask("list_runs", local_cfg, limit=100)
    assert listed == ask("list_runs", s3_cfg, limit=100)
    columns = listed["runs"]["columns"]
    keys = [f"{r[columns.index('source')]}:{r[columns.index('id')]}" for r in listed["runs"]["rows"]]
    sources = {k.split(":", 1)[0] for k in keys}
    assert {"wandb", "tensorboard", "jsonl", "mlflow", "dvclive", "trackio", "hf", "csv"} <= sources, listed
    by_source = {s: [k for k in keys if k.startswith(s + ":")] for s in sources}
    keys = sorted({k for ks in by_source.values() for k in (ks[0], ks[-1])})  # the newest and oldest of each
    for spec in TOOLS:
        if spec.name == "list_runs":
            continue
        if spec.name == "find_best_run":
            asks: list[dict[str, Any]] = [{"metric": "train/loss"}, {"metric": "loss"}]
        elif spec.name in ("compare_runs", "report"):
            asks = [{"runs": keys[i:i + 3]} for i in range(0, len(keys) - 1, 3)]
        else:
            asks = [{"run": k} for k in keys]
        for fields in asks:
            assert ask(spec.name, s3_cfg, **fields) == ask(spec.name, local_cfg, **fields), (spec.name, fields)


def test_the_cli_and_the_server_take_an_s3_root(uploaded: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    from runwise.cli import main
    from runwise.server.app import main as server_main

    local, url = uploaded
    _same_times(local, RunwiseConfig.load(url).root)
    assert main(["--root", url, "stats", "jsonl:run_b", "--format", "json"]) == 0
    on_s3 = json.loads(capsys.readouterr().out)
    runs.clear_cache()
    assert main(["--root", str(local), "stats", "jsonl:run_b", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == on_s3
    with pytest.raises(SystemExit) as exit_:
        server_main(["--root", "/no/such/dir"])
    assert exit_.value.code == 2
    capsys.readouterr()


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process syncs by itself (no store worker): for tests that replace remote's functions here."""
    monkeypatch.setattr(remote_worker, "_here", "the test replaces remote's functions in this process")


def test_the_store_work_is_done_in_a_worker_process(uploaded: tuple[Path, str], tmp_path: Path) -> None:
    """A process reading an s3:// root never imports the store's SDK: its store worker lists and fetches."""
    local, url = uploaded
    code = (
        "import json, sys\n"
        "from runwise.config import RunwiseConfig\n"
        "from runwise.tools import TOOLS_BY_NAME\n"
        "cfg = RunwiseConfig.load(sys.argv[1])\n"
        "spec = TOOLS_BY_NAME['get_stats']\n"
        "answer = spec.run(spec.input.model_validate({'run': 'jsonl:run_b'}), cfg).model_dump(mode='json')\n"
        "sdk = [m for m in ('fsspec', 's3fs', 'aiobotocore', 'botocore', 'aiohttp') if m in sys.modules]\n"
        "print(json.dumps({'answer': answer, 'sdk': sdk}))\n"
    )
    cache = tmp_path / "child-cache"
    proc = subprocess.run([sys.executable, "-c", code, url], env={**os.environ, "RUNWISE_CACHE_DIR": str(cache)},
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["sdk"] == [], got["sdk"]
    mirror = remote.local_root(url, cache)
    assert (mirror / "logs" / "run_b.jsonl").read_bytes() == (local / "logs" / "run_b.jsonl").read_bytes()
    _same_times(local, mirror)
    assert got["answer"] == ask("get_stats", _local_cfg(local, tmp_path), run="jsonl:run_b")


def _wait_for(path: Path, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def test_begin_syncs_without_waiting_and_sync_takes_its_answer(uploaded: tuple[Path, str], tmp_path: Path) -> None:
    _, url = uploaded
    cache = tmp_path / "cache"
    remote.begin(url, cache)
    assert _wait_for(remote.mirror_dir(url, cache) / remote.MANIFEST)  # mirrored while this process waited not
    done = remote.sync(url, cache)
    assert done is not None and done.listed > 10 and done.fetched == done.listed, done  # begin's answer
    again = remote.sync(url, cache)  # INTERVAL is 0 here: listed again, nothing new
    assert again is not None and (again.listed, again.fetched) == (done.listed, 0), again


def test_a_worker_begun_for_one_read_exits_after_it(uploaded: tuple[Path, str], tmp_path: Path) -> None:
    _, url = uploaded
    remote.begin(url, tmp_path / "cache", last=True)
    worker = remote_worker._worker
    assert worker is not None and worker.closed
    done = remote.sync(url, tmp_path / "cache")
    assert done is not None and done.fetched > 0
    assert worker.proc.wait(timeout=30) == 0  # its stdin ended after its one answer: it exited by itself
    again = remote.sync(url, tmp_path / "cache")  # a new worker for a later sync
    assert again is not None and again.fetched == 0 and remote_worker._worker is not worker


def test_a_worker_that_dies_leaves_the_sync_to_this_process(
    uploaded: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = uploaded
    monkeypatch.setattr(remote_worker, "_here", None)  # restored after the test: workers again
    assert remote.sync(url, tmp_path / "cache") is not None
    first = remote_worker._worker
    assert first is not None
    first.proc.kill()  # between two requests: the next one starts a new worker
    first.proc.wait()
    assert remote.sync(url, tmp_path / "cache") is not None
    second = remote_worker._worker
    assert second is not None and second is not first and remote_worker._here is None
    remote.begin(url, tmp_path / "other-cache", last=True)  # its last request ...
    remote.begin(url, tmp_path / "third-cache")  # ... so this one goes to a third worker
    third = remote_worker._worker
    assert third is not None and third is not second
    second.proc.kill()  # with a request it has not answered
    second.proc.wait()
    for _ in range(2):  # done here, in full; and again (nothing is read from the dead worker twice)
        done = remote.sync(url, tmp_path / "other-cache")
        assert done is not None and done.listed > 10 and done.fetched in (0, done.listed), done
    assert remote_worker._here is not None and "failed" in remote_worker._here
    done = remote.sync(url, tmp_path / "third-cache")  # the third worker's answer is still taken
    assert done is not None and done.fetched == done.listed > 10, done


def test_threads_share_the_worker(uploaded: tuple[Path, str], tmp_path: Path) -> None:
    """The MCP server calls tools in threads: syncs of two mirrors from eight threads at once all get their
    own answers from the one worker."""
    from concurrent.futures import ThreadPoolExecutor

    _, url = uploaded
    caches = [tmp_path / f"cache-{i % 2}" for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(lambda c: remote.sync(url, c, force=True), caches))
    assert all(d is not None and d.listed > 10 and not d.failed for d in done), done
    assert sum(d.fetched for d in done if d is not None) == 2 * done[0].listed  # each mirror fetched once
    assert remote_worker._here is None


def test_the_worker_sees_the_environment_as_it_is_now(
    uploaded: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials removed after the worker started: its next sync has none either (the SDK's own variables
    travel with each request)."""
    _, url = uploaded
    assert remote.sync(url, tmp_path / "cache") is not None
    assert remote_worker._worker is not None and remote_worker._here is None
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigError, match="credentials"):
        remote.sync(url, tmp_path / "cache")


@pytest.mark.anyio
async def test_the_stdio_server_on_an_s3_root_as_claude_code_starts_it(
    uploaded: tuple[Path, str], tmp_path: Path
) -> None:
    """`runwise-mcp --root s3://...` as a subprocess: its store worker begins at start-up; answers as on the copy."""
    local, url = uploaded
    cache = tmp_path / "server-cache"
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "PATH", "HOME", "PYTHON"))}
    params = StdioServerParameters(command=sys.executable, args=["-m", "runwise.mcp_server", "--root", url],
                                   env={**env, "RUNWISE_CACHE_DIR": str(cache)}, cwd=str(tmp_path))
    async with Client(params) as client:
        result = await client.call_tool("get_stats", {"run": "jsonl:run_b"})
    assert not result.is_error and result.structured_content is not None, result
    _same_times(local, remote.local_root(url, cache))
    assert result.structured_content == ask("get_stats", _local_cfg(local, tmp_path), run="jsonl:run_b")


def _sync_counting(url: str, cfg_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[remote.Synced, list[int]]:
    """Sync `url` and count the bytes each ranged read returned."""
    got: list[int] = []
    real = remote._get

    def counting(fs: Any, obj: dict[str, Any], start: int, end: int, done: remote.Synced) -> bytes:
        data = real(fs, obj, start, end, done)
        got.append(len(data))
        return data

    monkeypatch.setattr(remote, "_get", counting)
    return remote.sync_here(url, cfg_dir), got  # in this process, where the ranged reads can be counted


def test_a_grown_object_is_read_on_from_its_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = training_rows(steps=3000, seed=3, config={"lr": 0.1}, meta={"name": "live"})
    local = tmp_path / "proj"
    write_jsonl(local / "logs" / "live.jsonl", rows[:2000])
    prefix = f"grow-{tmp_path.name}"
    _upload(local, prefix)
    url = f"s3://{BUCKET}/{prefix}"
    cfg = RunwiseConfig.load(url)
    first = ask("get_stats", cfg, run="live")
    assert first["steps"] if "steps" in first else first

    write_jsonl(local / "logs" / "live.jsonl", rows)  # the run logged 1000 more rows
    old_size = (cfg.root / "logs" / "live.jsonl").stat().st_size
    new_size = (local / "logs" / "live.jsonl").stat().st_size
    _upload(local, prefix)
    done, got = _sync_counting(url, cfg.cache_dir, monkeypatch)
    assert (done.grown, done.fetched) == (1, 0), done
    assert sum(got) == done.bytes <= new_size - old_size + remote.OVERLAP, (got, old_size, new_size)
    assert (cfg.root / "logs" / "live.jsonl").read_bytes() == (local / "logs" / "live.jsonl").read_bytes()

    runs.clear_cache()
    _same_times(local, cfg.root)
    assert ask("get_stats", cfg, run="live") == ask("get_stats", _local_cfg(local, tmp_path), run="live")
    by_url = ask("get_stats", cfg, run=f"{url}/logs/live.jsonl")  # the object's URL names its run too
    assert by_url == ask("get_stats", _local_cfg(local, tmp_path), run="logs/live.jsonl")

    done, got = _sync_counting(url, cfg.cache_dir, monkeypatch)  # nothing changed: nothing fetched
    assert (done.fetched, done.grown, done.bytes, got) == (0, 0, 0, [])


def test_an_object_rewritten_at_the_same_size_is_fetched_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = write_project(tmp_path / "proj")
    prefix = f"etag-{tmp_path.name}"
    _upload(local, prefix)
    url = f"s3://{BUCKET}/{prefix}"
    cfg = RunwiseConfig.load(url)
    before = ask("get_stats", cfg, run="run_a")
    log = local / "logs" / "run_a.jsonl"
    text = log.read_text()
    log.write_text(text.replace('"lr": 0.0003', '"lr": 0.0009'))  # same length, other bytes: a new ETag
    assert log.stat().st_size == len(text)
    _upload(local, prefix)
    done, got = _sync_counting(url, cfg.cache_dir, monkeypatch)
    assert (done.fetched, done.grown, done.bytes, got) == (1, 0, len(text), []), done
    after = ask("get_stats", cfg, run="run_a")
    assert after != before and "0.0009" in json.dumps(after)


@pytest.mark.parametrize("where", ["start", "end"])
def test_an_object_grown_but_changed_is_fetched_whole_and_a_deleted_object_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Changed at its start: caught by the ETag (the MD5 of a one-part upload); at its end: by the overlap,
    with no MD5 to check (as for a multipart upload)."""
    local = write_project(tmp_path / "proj")
    prefix = f"change-{where}-{tmp_path.name}"
    _upload(local, prefix)
    url = f"s3://{BUCKET}/{prefix}"
    cfg = RunwiseConfig.load(url)
    log = local / "logs" / "run_a.jsonl"
    text = log.read_text()
    if where == "start":
        text = "x" * 10 + text[10:]
    else:
        monkeypatch.setattr(remote, "_content_md5", lambda info, etag: None)
        text = text[:-10] + "x" * 9 + "\n"
    log.write_text(text + '{"step": 1000, "train/loss": 0.5}\n')  # grown, but not only appended to
    _upload(local, prefix)
    _client().delete_object(Bucket=BUCKET, Key=f"{prefix}/logs/run_b.jsonl")
    done, _ = _sync_counting(url, cfg.cache_dir, monkeypatch)
    assert (done.fetched, done.grown, done.removed) == (1, 0, 1), done
    assert (cfg.root / "logs" / "run_a.jsonl").read_bytes() == log.read_bytes()
    assert not (cfg.root / "logs" / "run_b.jsonl").exists()


def test_a_tensorboard_dir_that_is_a_url(tmp_path: Path) -> None:
    prefix = f"tb-{tmp_path.name}"
    _upload(DATA / "tensorboard" / "runs", prefix)
    local = tmp_path / "proj"
    local.mkdir()
    (local / "runwise.json").write_text(json.dumps({"tensorboard_dirs": [f"s3://{BUCKET}/{prefix}"]}))
    cfg = RunwiseConfig.load(local)
    rows = ask("list_runs", cfg, limit=100)["runs"]["rows"]
    assert sorted(r[1] for r in rows) == ["restarted", "tf2", "txb"], rows


def test_the_mirror_stays_beside_the_cache_dir(uploaded: tuple[Path, str], tmp_path: Path) -> None:
    local, url = uploaded
    before = {p for p in tmp_path.rglob("*")}
    cfg = RunwiseConfig.load(url)
    ask("summarize_run", cfg, run="jsonl:run_b")
    mirrors = cfg.cache_dir.with_name(cfg.cache_dir.name + "-remote")
    new = {p for p in tmp_path.rglob("*")} - before
    assert not new, new  # nothing in the project's directory (nor anywhere under the test's tmp dir)
    assert cfg.root.is_relative_to(mirrors)
    assert (cfg.root / "logs" / "run_b.jsonl").read_bytes() == (local / "logs" / "run_b.jsonl").read_bytes()


def test_object_keys_that_would_leave_the_mirror_are_skipped() -> None:
    assert remote._relative("bucket/p/../../etc/passwd", "bucket/p") is None
    assert remote._relative("bucket/p//x", "bucket/p") is None
    assert remote._relative("bucket/other/x", "bucket/p") is None
    assert remote._relative("bucket/p/logs/a.jsonl", "bucket/p") == "logs/a.jsonl"


def test_a_missing_bucket_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        RunwiseConfig.load(f"s3://no-such-bucket-{tmp_path.name.lower().replace('_', '-')}/proj")
    text = str(err.value)
    assert "\n" not in text and "no-such-bucket" in text and "cannot list" in text, text


@pytest.mark.usefixtures("in_process")
def test_a_mirror_stays_readable_when_the_store_is_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = write_project(tmp_path / "proj")
    prefix = f"offline-{tmp_path.name}"
    _upload(local, prefix)
    url = f"s3://{BUCKET}/{prefix}"
    RunwiseConfig.load(url)

    def unreachable(url: str) -> Any:
        raise ConfigError(f"cannot list {url}: EndpointConnectionError: could not connect")

    monkeypatch.setattr(remote, "filesystem", unreachable)
    cfg = RunwiseConfig.load(url)
    listed = ask("list_runs", cfg)
    assert listed["total"] == 2
    notes = [n for n in listed["notes"] if "not refreshed" in n]
    assert len(notes) == 1 and "could not connect" in notes[0] and "\n" not in notes[0], listed["notes"]
    with pytest.raises(ConfigError, match="could not connect"):  # never synced: nothing to show
        RunwiseConfig.load(url + "-other")


def test_an_object_that_cannot_be_mirrored_is_a_note(tmp_path: Path) -> None:
    local = write_project(tmp_path / "proj")
    prefix = f"clash-{tmp_path.name}"
    _upload(local, prefix)
    _client().put_object(Bucket=BUCKET, Key=f"{prefix}/logs", Body=b"a file named like a folder")
    cfg = RunwiseConfig.load(f"s3://{BUCKET}/{prefix}")
    listed = ask("list_runs", cfg)
    notes = [n for n in listed["notes"] if "not mirrored" in n]
    assert len(notes) == 1 and "2 objects not mirrored (logs/run_a.jsonl: " in notes[0], notes


def test_no_credentials_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance to ask either
    with pytest.raises(ConfigError) as err:
        RunwiseConfig.load(f"s3://{BUCKET}/proj")
    text = str(err.value)
    assert "\n" not in text and "credentials" in text, text


def test_a_url_in_tensorboard_dirs_skips_the_cli_answer_store(tmp_path: Path) -> None:
    """The CLI's quick answers are checked against local files only: a mirror is synced with the config."""
    from runwise import answers

    local = write_project(tmp_path / "proj")
    assert answers.quick("get_stats", "text", {"run": "run_a"}, str(local)) is not None
    (local / "runwise.json").write_text(json.dumps({"tensorboard_dirs": [f"s3://{BUCKET}/tb"]}))
    assert answers.quick("get_stats", "text", {"run": "run_a"}, str(local)) is None
    assert answers.quick("get_stats", "text", {"run": "run_a"}, f"s3://{BUCKET}/proj") is None


@pytest.mark.usefixtures("in_process")
def test_missing_packages_are_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] in ("s3fs", "gcsfs")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(remote, "_filesystems", remote.Bounded(8))  # none made before
    imported = sys.modules["fsspec.registry"]._registry  # the classes fsspec imported already
    for scheme in ("s3", "s3a", "gs", "gcs"):
        monkeypatch.delitem(imported, scheme, raising=False)
    monkeypatch.setitem(sys.modules, "s3fs", None)  # `import s3fs` now raises ImportError, as if not installed
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    for url, package in (("s3://bucket/proj", "s3fs"), ("gs://bucket/proj", "gcsfs")):
        with pytest.raises(ConfigError) as err:
            RunwiseConfig.load(url)
        text = str(err.value)
        assert "\n" not in text and package in text and "runwise[remote]" in text, text
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(ConfigError, match=r"needs fsspec and s3fs: pip install 'runwise\[remote\]'"):
        RunwiseConfig.load("s3://bucket/proj")


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ConfigError, match="s3://"):
        RunwiseConfig.load("ftp://host/proj")
    with pytest.raises(ConfigError, match="no bucket"):
        RunwiseConfig.load("s3://")


def test_what_a_gcs_listing_gives_is_read_too() -> None:
    md5 = "1B2M2Y8AsgTpgAmY7PhCfg=="  # GCS's md5Hash (base64): the MD5 of no bytes
    info = {"updated": "2026-01-02T03:04:05.678Z", "md5Hash": md5, "etag": "CJ7x", "size": 0}
    assert remote._content_md5(info, "CJ7x") == "d41d8cd98f00b204e9800998ecf8427e"
    when = remote._mtime_ns(info, "CJ7x")
    assert when // 1_000_000_000 == 1767323045 and when != remote._mtime_ns(info, "CJ7y")  # the ETag tells apart
    assert remote._content_md5({}, "d41d8cd98f00b204e9800998ecf8427e-2") is None  # a multipart upload's ETag
