"""Symbolic links in a project: followed only inside the roots, through every tool and reference form.

The project (all three sources) holds links to files and directories outside the roots, links
inside the roots, loops and dangling links. The files outside carry marker strings that appear in
no file inside and in no reference sent; no answer of any tool may contain one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from runwise import runs
from runwise.config import RunwiseConfig
from runwise.errors import OutsideRoot
from runwise.model import RunEntry
from runwise.parsers import discover_all, jsonl
from runwise.parsers import tensorboard as tb
from runwise.parsers import wandb as wb
from runwise.server.app import build_server
from runwise.tools import TOOLS
from tests.conftest import training_rows, write_jsonl

DATA = Path(__file__).parent / "data"
WANDB = DATA / "wandb"
FIN = "offline-run-20261128_020038-fin00001"  # name fin-run, notes "finished fixture", logs train/acc
PFX = "offline-run-20261128_020304-pfx00001"
RES = "offline-run-20261128_020043-res00001"
RICH = "offline-run-20261128_020105-rich0001"
KIL = "offline-run-20261128_020103-kil00001"

# in the outside files only (checked below to be absent from everything inside)
MARKERS = ("JSONL_OUTSIDE_MARKER", "tb_outside_marker", "finished fixture", "train/acc")


def _tb_run(d: Path, tag: str, text: str | None = None) -> None:
    """A TensorBoard run written by tensorboardX (the real client)."""
    from tensorboardX import SummaryWriter

    w = SummaryWriter(logdir=str(d))
    for step in range(20):
        w.add_scalar(tag, 1.0 / (step + 1), step)
    if text is not None:
        w.add_text("note", text, 0)
    w.close()


def build(tmp_path: Path) -> Path:
    """The project described in the module docstring; returns its root."""
    root, out = tmp_path / "proj", tmp_path / "outside"
    # outside the roots
    write_jsonl(out / "secret.jsonl", training_rows(steps=30, config={"secret": "JSONL_OUTSIDE_MARKER"},
                                                    meta={"name": "outside-jsonl-name"}), age_s=60)
    write_jsonl(out / "jsonl_dir" / "secret2.jsonl",
                [{"step": s, "JSONL_OUTSIDE_MARKER": s} for s in range(10)], age_s=60)
    _tb_run(out / "tbrun", "tb_outside_marker/loss", "tb_outside_marker text")
    shutil.copytree(WANDB / FIN, out / "wandb" / FIN)
    # inside: real runs
    write_jsonl(root / "logs" / "real.jsonl", training_rows(steps=40, meta={"name": "the real run"}), age_s=600)
    _tb_run(root / "runs" / "tb_real", "loss")
    for d in (PFX, RES, KIL):
        shutil.copytree(WANDB / d, root / "wandb" / d)
    (root / "wandb" / KIL / "logs").mkdir()
    (root / "wandb" / KIL / "logs" / "debug-core.log").symlink_to(tmp_path / "gone" / "core.log")  # as wandb leaves it
    (root / "wandb" / "latest-run").symlink_to(PFX)
    # inside: targets of links that stay inside the project root
    write_jsonl(root / "data" / "inside.jsonl", training_rows(steps=25, meta={"name": "linked inside"}), age_s=300)
    _tb_run(root / "data" / "tb_inside", "loss")
    shutil.copytree(WANDB / RICH, root / "data" / "wandb_in" / RICH)
    logs, tbdir, wdir = root / "logs", root / "runs", root / "wandb"
    links = {
        logs / "link_out.jsonl": out / "secret.jsonl",  # file outside
        logs / "outdir": out / "jsonl_dir",  # directory outside
        logs / "link_in.jsonl": root / "data" / "inside.jsonl",  # file inside
        logs / "loop": logs,  # directory loop
        logs / "dangling.jsonl": root / "nowhere.jsonl",
        tbdir / "tb_out": out / "tbrun",
        tbdir / "tb_in": root / "data" / "tb_inside",
        tbdir / "loop": tbdir,
        tbdir / "tb_dangling": root / "missing",
        wdir / FIN: out / "wandb" / FIN,  # W&B run directory outside
        wdir / RICH: root / "data" / "wandb_in" / RICH,  # W&B run directory inside
    }
    for link, target in links.items():
        link.symlink_to(target)
    # a real TensorBoard run directory whose only event file is a link outside
    (tbdir / "tb_mixed").mkdir()
    event = next((out / "tbrun").iterdir())
    (tbdir / "tb_mixed" / event.name).symlink_to(event)
    # a real W&B run directory whose log is a link outside
    fake = wdir / "offline-run-20261128_020039-fin00002"
    fake.mkdir()
    (fake / "run-fin00002.wandb").symlink_to(out / "wandb" / FIN / "run-fin00001.wandb")
    (root / "runwise.json").write_text(json.dumps({"project_name": "links"}))
    return root


def _inside_bytes(root: Path) -> bytes:
    """Every byte of every regular file inside the project (links not followed)."""
    out = b""
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                out += p.read_bytes() + p.name.encode()
    return out


@pytest.fixture
def project(tmp_path: Path) -> Path:
    runs.clear_cache()
    root = build(tmp_path)
    inside = _inside_bytes(root)
    for m in MARKERS:  # the markers are only outside, else the test proves nothing
        assert m.encode() not in inside, m
    return root


def _cfg(root: Path) -> RunwiseConfig:
    return RunwiseConfig.load(root, env={"RUNWISE_NO_CACHE": "1"})


def test_discovery_follows_links_inside_and_notes_the_others(project: Path) -> None:
    entries, notes = discover_all(_cfg(project))
    keys = sorted(e.key for e in entries)
    assert keys == sorted([
        "jsonl:real", "jsonl:link_in",
        "tensorboard:tb_real", "tensorboard:tb_in",
        "wandb:pfx00001", "wandb:res00001", "wandb:kil00001", "wandb:rich0001",
    ])
    text = "\n".join(notes)
    assert len(notes) == 4, notes  # outside links of each source, dangling .jsonl link
    for name, key in (("logs/link_out.jsonl", "logs_dir"), ("logs/outdir", "logs_dir"),
                      ("runs/tb_out", "tensorboard_dirs"), ("runs/tb_mixed/", "tensorboard_dirs"),
                      (f"wandb/{FIN}", "wandb_dir"), ("wandb/offline-run-20261128_020039-fin00002/", "wandb_dir")):
        assert any(name in n and key in n and "outside the project roots" in n for n in notes), (name, notes)
    assert "logs/dangling.jsonl" in text
    assert "debug-core" not in text and "latest-run" not in text and "loop" not in text


def test_each_source_notes_its_own_links(project: Path) -> None:
    cfg = _cfg(project)
    for mod, key in ((jsonl, "logs_dir"), (tb, "tensorboard_dirs"), (wb, "wandb_dir")):
        notes: list[str] = []
        mod.discover(cfg, notes)
        assert notes and all(key in n for n in notes if "outside" in n), (mod, notes)


def test_tensorboard_run_directory_linked_inside_is_discovered(project: Path) -> None:
    (entry,) = [e for e in tb.discover(_cfg(project)) if e.id == "tb_in"]
    assert entry.paths[0].parent == project / "runs" / "tb_in"
    run = runs.load(entry, _cfg(project))
    assert list(run.history) == ["loss"] and len(run.history["loss"]) == 20


def test_note_is_bounded_however_many_links(tmp_path: Path) -> None:
    root, out = tmp_path / "proj", tmp_path / "out"
    write_jsonl(out / "x.jsonl", [{"step": 0, "a": 1}])
    (root / "logs").mkdir(parents=True)
    for i in range(200):
        (root / "logs" / f"l{i:03}{'x' * 200}.jsonl").symlink_to(out / "x.jsonl")
    notes: list[str] = []
    assert jsonl.discover(_cfg(root), notes) == []
    (note,) = notes
    assert "200 links" in note and "logs/l000xxx" in note and "197 more" in note and len(note) < 400


def test_a_root_that_is_itself_a_link_is_read_where_it_points(tmp_path: Path) -> None:
    """`logs -> /scratch/logs` is common: the configured directory is where it points."""
    root, scratch = tmp_path / "proj", tmp_path / "scratch"
    write_jsonl(scratch / "logs" / "a.jsonl", [{"step": 0, "loss": 1.0}])
    root.mkdir()
    (root / "logs").symlink_to(scratch / "logs")
    cfg = _cfg(root)
    (entry,) = jsonl.discover(cfg)
    assert runs.load(entry, cfg).history["loss"].values.tolist() == [1.0]


@pytest.mark.parametrize("outside", ["file", "dir_file", "dir"])
def test_load_refuses_an_entry_that_reaches_outside(project: Path, outside: str) -> None:
    """Defence in depth: an entry made some other way than discovery is still checked before reading."""
    cfg = _cfg(project)
    entry = {
        "file": RunEntry("x", "jsonl", (project / "logs" / "link_out.jsonl",)),
        "dir_file": RunEntry("y", "tensorboard", (project / "runs" / "tb_mixed",), extra={"file": True}),
        "dir": RunEntry("fin00001", "wandb", (project / "wandb" / FIN,)),
    }[outside]
    with pytest.raises(OutsideRoot, match="outside the project roots"):
        runs.load(entry, cfg)


# ---------------------------------------------------------------- every tool, every reference form


def _refs(root: Path) -> list[str]:
    out = root.parent / "outside"
    return [
        "latest", "link_out", "jsonl:link_out", "outdir/secret2", "jsonl:outdir/secret2", "outside-jsonl-name",
        "logs/link_out.jsonl", str(root / "logs" / "link_out.jsonl"), "logs/outdir/secret2.jsonl",
        "./logs/link_out.jsonl", str(out / "secret.jsonl"), "../outside/secret.jsonl",
        "tb_out", "tensorboard:tb_out", "runs/tb_out", str(root / "runs" / "tb_out"), "tb_mixed",
        "runs/tb_mixed", str(out / "tbrun"), "tb_out@5",
        "fin00001", "wandb:fin00001", "fin-run", "fin00002", f"wandb/{FIN}", f"wandb/{FIN}/run-fin00001.wandb",
        str(out / "wandb" / FIN), "wandb/offline-run-20261128_020039-fin00002",
        "link_in", "tb_in", "rich0001", "real",
    ]


def _args(tool: str, model: Any, ref: str) -> dict[str, Any]:
    fields = model.model_fields
    if "run" in fields:
        return {"run": ref}
    if "runs" in fields:
        return {"runs": [ref, "real"]}
    if "metric" in fields:
        return {"metric": "loss"}
    return {}


@pytest.mark.anyio
async def test_no_tool_returns_a_byte_from_outside(project: Path) -> None:
    server = build_server(lambda: _cfg(project))
    answers: list[str] = []
    async with Client(server) as client:
        listed = await client.call_tool("list_runs", {"limit": 50})
        for spec in TOOLS:
            refs = _refs(project) if ("run" in spec.input.model_fields or "runs" in spec.input.model_fields) else [""]
            for ref in refs:
                result = await client.call_tool(spec.name, _args(spec.name, spec.input, ref))
                text = json.dumps(result.structured_content) + "".join(
                    getattr(c, "text", "") for c in result.content)
                answers.append(f"{spec.name} {ref!r}: {text}")
    for answer in answers:
        for m in MARKERS:
            assert m not in answer, answer[:500]
    listing = json.dumps(listed.structured_content)
    for m in (*MARKERS, "fin-run", "outside-jsonl-name"):  # names of outside runs: listed without being asked
        assert m not in listing
    notes = (listed.structured_content or {})["notes"]
    assert any("logs/link_out.jsonl" in n and "logs_dir" in n for n in notes), notes
    assert any("runs/tb_out" in n and "tensorboard_dirs" in n for n in notes), notes
    assert any(FIN in n and "wandb_dir" in n for n in notes), notes
    ids = [row[0] for row in (listed.structured_content or {})["runs"]["rows"]]
    assert sorted(ids) == sorted(["real", "link_in", "tb_real", "tb_in", "pfx00001", "res00001", "kil00001",
                                  "rich0001"])

