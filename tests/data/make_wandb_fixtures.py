"""Make the W&B fixtures under tests/data/wandb/ with the real wandb client, offline.

    python tests/data/make_wandb_fixtures.py [--python-015 PY] [--python-09 PY] [--only NAME ...]

Each scenario runs in a child process from a neutral temporary directory (WANDB_DIR there), so no
path of this machine ends up in the files. Afterwards the run directories are copied here without
logs/, tmp/ and debug logs, and every copied file is checked for absolute paths.

Old clients, each in a throw-away venv outside the repo (Python 3.11):
  python3 -m venv /tmp/wandb015 && /tmp/wandb015/bin/pip install "wandb==0.15.12"
  python3 -m venv /tmp/oldwandb && /tmp/oldwandb/bin/pip install "wandb==0.9.7"
wandb 0.9.7 installs but fails on `collections.Iterable`; a sitecustomize.py in that venv's
site-packages that sets collections.Iterable/Mapping/MutableMapping/Sequence/Callable/Hashable/
MutableSet/Set from collections.abc makes it run (its helper process needs it too).

Scenarios (known values: the tests assert them):
  finished   id fin00001: 60 steps; train/loss = 1/(s+1), train/acc = s/60 every step; val/loss =
             2/(s+1) at s % 10 == 9 (separate log call, same step); opt.lr (nested dict) =
             0.001*(1-s/60); epoch = s // 20; nested config; name/notes/tags/group/job type;
             config.update(extra=1); summary best_val_loss = 0.0333; prints "epoch N done".
  killed     id kil00001: loss = 1/(s+1), prints "step N" every 100, SIGKILL after row 300.
  resumed    id res00001: segment 1 steps 0..19 loss = s, finish(exit_code=1); segment 2
             (resume="allow") steps 15..29 loss = 100 + s.
  rich       id rich0001: histogram, table, image, string, NaN/inf/-inf, bool, 2**64, None.
  prefix     ids pfx00001 and pfx000012: loss = 1, 2, 3 and 10, 20, 30.
  old015     wandb 0.15 (needs --python-015): id old15001, loss = 1/(s+1) for 10 steps,
             nested dict opt.lr = s/10, odd = s except NaN at step 5; config lr=0.1, opt.beta=0.9.
  old09      wandb 0.9 (needs --python-09): dryrun run, same values as old015.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "wandb"
SCENARIOS = ("finished", "killed", "resumed", "rich", "prefix", "old015", "old09")


def SET(wandb: object) -> object:  # noqa: N802
    """Settings that keep machine paths out of the files (no metadata record, neutral host)."""
    return wandb.Settings(host="fixture-host", x_disable_meta=True, x_disable_stats=True)  # type: ignore[attr-defined]


def child(name: str) -> None:
    """Run one scenario (inside the child process)."""
    import math
    import signal
    import time

    import wandb

    kw = dict(project="runwise-fixtures")
    if name == "finished":
        run = wandb.init(
            id="fin00001", name="fin-run", notes="finished fixture", tags=["fixture", "finished"],
            group="grp", job_type="train", config={
                "optimizer": {"name": "adam", "lr": 0.001, "betas": [0.9, 0.999]},
                "batch_size": 32, "model": "mlp"}, settings=SET(wandb), **kw)
        run.config.update({"extra": 1})
        for s in range(60):
            run.log({"train/loss": 1 / (s + 1), "train/acc": s / 60, "opt": {"lr": 0.001 * (1 - s / 60)},
                     "epoch": s // 20}, step=s)
            if s % 10 == 9:
                run.log({"val/loss": 2 / (s + 1)}, step=s)
            if s % 20 == 19:
                print(f"epoch {s // 20} done", flush=True)
        run.summary["best_val_loss"] = 0.0333
        run.finish()
    elif name == "killed":
        run = wandb.init(id="kil00001", name="killed-run", settings=SET(wandb), **kw)
        for s in range(1000):
            run.log({"loss": 1 / (s + 1)})
            if s % 100 == 0:
                print(f"step {s}", flush=True)
            if s == 300:
                time.sleep(0.5)
                os.kill(os.getpid(), signal.SIGKILL)
    elif name == "resumed1":
        run = wandb.init(id="res00001", name="resumed-run", settings=SET(wandb), **kw)
        for s in range(20):
            run.log({"loss": float(s)}, step=s)
        run.finish(exit_code=1)
    elif name == "resumed2":
        run = wandb.init(id="res00001", resume="allow", settings=SET(wandb), **kw)
        for s in range(15, 30):
            run.log({"loss": 100.0 + s}, step=s)
        run.finish()
    elif name == "rich":
        import numpy as np

        run = wandb.init(id="rich0001", name="rich-run", settings=SET(wandb), **kw)
        for s in range(5):
            row = {"hist": wandb.Histogram([1, 2, 2, 3, s]), "text": f"hello {s}", "flag": s % 2 == 0,
                   "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "big": 2**64,
                   "x": float(s)}
            if s == 1:
                row["img"] = wandb.Image(np.zeros((4, 4, 3), dtype=np.uint8))
            if s == 2:
                row["table"] = wandb.Table(columns=["a", "b"], data=[[1, "u"], [2, "v"]])
            if s == 3:
                row["maybe"] = None
            run.log(row)
        run.finish()
    elif name.startswith("prefix"):
        rid, scale = ("pfx00001", 1) if name == "prefix1" else ("pfx000012", 10)
        run = wandb.init(id=rid, settings=SET(wandb), **kw)
        for s in range(3):
            run.log({"loss": float(scale * (s + 1))})
        run.finish()
    elif name in ("old015", "old09"):
        rid = "old15001" if name == "old015" else "old09001"
        run = wandb.init(id=rid, name=name, config={"lr": 0.1, "opt": {"beta": 0.9}}, **kw)
        for s in range(10):
            wandb.log({"loss": 1 / (s + 1), "opt": {"lr": s / 10}, "odd": math.nan if s == 5 else float(s)})
        print("done", flush=True)
        if hasattr(run, "finish"):
            run.finish()
        else:
            wandb.join()


def run_child(name: str, python: str, work: Path, mode: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    data = Path(tempfile.gettempdir()) / "runwise-fixture-data"  # a fixed, neutral cache path
    env.update(WANDB_DATA_DIR=str(data), WANDB_CACHE_DIR=str(data / "cache"),
               WANDB_CONFIG_DIR=str(data / "config"), WANDB_ARTIFACT_DIR=str(data / "artifacts"))
    env.update(WANDB_MODE=mode, WANDB_DIR=str(work), WANDB_SILENT="true", WANDB_PROGRAM="train.py",
               WANDB_DISABLE_GIT="true", WANDB_DISABLE_CODE="true", WANDB_HOST="fixture-host")
    script = work / "train.py"
    shutil.copy(__file__, script)
    proc = subprocess.run([python, "train.py", "--child", name], cwd=work, env=env, timeout=300)
    if proc.returncode not in (0, -9):
        raise SystemExit(f"scenario {name} failed with {proc.returncode}")


def copy_runs(work: Path) -> list[Path]:
    out = []
    wdir = work / "wandb"
    for d in sorted(wdir.iterdir()):
        if d.is_symlink() or not d.is_dir():
            continue
        dest = HERE / d.name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(d, dest, symlinks=True, ignore=shutil.ignore_patterns(
            "logs", "tmp", "debug*.log", "*.syncstate", "requirements.txt", "wandb-events.jsonl"))
        meta = dest / "wandb-metadata.json"
        for meta in (dest / "wandb-metadata.json", dest / "files" / "wandb-metadata.json"):
            if meta.exists():  # old clients: drop the fields that hold machine paths or users
                info = json.loads(meta.read_text())
                for key in ("root", "executable", "username", "email", "codePath"):
                    info.pop(key, None)
                meta.write_text(json.dumps(info, indent=4) + "\n")
        out.append(dest)
    return out


def check_paths(dirs: list[Path], work: Path) -> None:
    bad = [str(work).encode(), b"/work/", b"/root", b"/home/", str(Path.home()).encode()]
    for d in dirs:
        for f in d.rglob("*"):
            if f.is_symlink():
                raise SystemExit(f"symlink left in fixture: {f}")
            if f.is_file():
                data = f.read_bytes()
                for b in bad:
                    if b in data:
                        raise SystemExit(f"{f} contains the machine path {b!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child")
    ap.add_argument("--python", default=sys.executable, help="python with wandb 0.31")
    ap.add_argument("--python-015", help="python with wandb 0.15 installed")
    ap.add_argument("--python-09", help="python with wandb 0.9 installed")
    ap.add_argument("--only", nargs="*", choices=SCENARIOS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return 0
    HERE.mkdir(parents=True, exist_ok=True)
    for name in args.only or SCENARIOS:
        with tempfile.TemporaryDirectory(prefix="wbfx") as tmp:
            work = Path(tmp)
            if name == "old015":
                if not args.python_015:
                    print("skip old015: no --python-015")
                    continue
                run_child(name, args.python_015, work, "offline")
            elif name == "old09":
                if not args.python_09:
                    print("skip old09: no --python-09")
                    continue
                run_child(name, args.python_09, work, "dryrun")
            elif name in ("resumed", "prefix"):
                for part in ("1", "2"):
                    run_child(name + part, args.python, work, "offline")
            else:
                run_child(name, args.python, work, "offline")
            dirs = copy_runs(work)
            check_paths(dirs, work)
            print(name, "->", ", ".join(d.name for d in dirs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
