"""README's Claude Code section, run as written: its `.mcp.json`, `claude mcp add` commands and settings, and
the HTTP section's `claude mcp add --transport http` line against `runwise-mcp --http` with a token.

The snippets are parsed out of README.md, so a broken snippet fails here. The server is started the
way Claude Code starts it: the command resolved on the child's PATH, `CLAUDE_PROJECT_DIR` set. Where
the `claude` CLI is installed (`npm install @anthropic-ai/claude-code`; .ci/run does), it registers
each form with `--scope project` in a tmp project, HOME pointed at a tmp directory, and the health
check of `claude mcp get` / `claude mcp list` (which spawns the server; no API key) must say
Connected, or Pending approval without the settings, or Failed to connect without PATH.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from runwise.tools import TOOLS
from tests.conftest import training_rows, write_jsonl
from tests.scripted_model import ScriptedModel, serving

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
EXAMPLES = REPO / "examples"
VENV_PLACEHOLDER = "/abs/path/to/.venv/bin/runwise-mcp"
CHECKOUT_PLACEHOLDER = "/abs/path/to/runwise"
PROJECT_PLACEHOLDER = "/abs/path/to/project"
VENV_FORM = [VENV_PLACEHOLDER]
PATH_FORM = ["runwise-mcp"]
UVX_FORM = ["uvx", "--from", CHECKOUT_PLACEHOLDER, "runwise-mcp"]
ROOT_FORM = ["runwise-mcp", "--root", PROJECT_PLACEHOLDER]
SCRIPTS = Path(sysconfig.get_path("scripts"))  # where pip put this environment's runwise-mcp


def claude_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Use it from Claude Code")
    return text[start : text.index("\n## ", start + 1)]


def json_blocks() -> list[dict[str, Any]]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", claude_section(), re.S)]


def mcp_json() -> dict[str, Any]:
    (block,) = [b for b in json_blocks() if "mcpServers" in b]
    return block


def settings_json() -> dict[str, Any]:
    (block,) = [b for b in json_blocks() if "permissions" in b]
    return block


def add_commands() -> list[list[str]]:
    """The argv after `claude mcp add runwise --` of every registration command the README shows."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", claude_section(), re.S):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words[:5] == ["claude", "mcp", "add", "runwise", "--"]:
                    found.append(words[5:])
    # the inline --root example counts too
    for inline in re.findall(r"`(claude mcp add runwise -- [^`]+)`", claude_section()):
        found.append(shlex.split(inline)[5:])
    return found


def readme_command(argv: list[str]) -> list[str]:
    """`argv` as the README shows it after `claude mcp add runwise --`; fails if the README lost it."""
    assert argv in add_commands(), f"README.md shows no `claude mcp add runwise -- {shlex.join(argv)}`"
    return argv


def installed_script() -> Path:
    script = SCRIPTS / "runwise-mcp"
    if not script.exists():
        pytest.skip(f"runwise-mcp is not installed as a console script in {SCRIPTS} (pip install -e .)")
    return script


def make_project(root: Path, name: str) -> Path:
    write_jsonl(root / "logs" / f"{name}.jsonl", training_rows(steps=50))
    return root


def child_env(home: Path, *, path: str, **extra: str) -> dict[str, str]:
    """The environment Claude Code gives a server it starts: PATH, HOME, CLAUDE_PROJECT_DIR; no user state."""
    return {"PATH": path, "HOME": str(home), "RUNWISE_NO_CACHE": "1", **extra}


async def run_ids(params: StdioServerParameters) -> set[str]:
    async with Client(params) as client:
        result = await client.call_tool("list_runs", {})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    columns = result.structured_content["runs"]["columns"]
    return {row[columns.index("id")] for row in result.structured_content["runs"]["rows"]}


def test_readme_shows_each_way_to_register() -> None:
    assert sorted(add_commands()) == sorted([VENV_FORM, PATH_FORM, UVX_FORM, ROOT_FORM])
    assert f"pipx install {CHECKOUT_PLACEHOLDER}" in claude_section()


def test_example_files_are_the_readme_snippets() -> None:
    """examples/ holds the files the README shows, at the places they go in a project."""
    assert json.loads((EXAMPLES / ".mcp.json").read_text()) == mcp_json()
    assert json.loads((EXAMPLES / ".claude" / "settings.json").read_text()) == settings_json()


def test_settings_name_the_server_of_mcp_json() -> None:
    (server,) = mcp_json()["mcpServers"]
    settings = settings_json()
    assert settings["enabledMcpjsonServers"] == [server]
    assert settings["permissions"]["allow"] == [f"mcp__{server}"]  # one rule: every tool of that server
    for tool in TOOLS:
        assert len(f"mcp__{server}__{tool.name}") <= 64  # Claude Code's limit on a tool's full name


@pytest.mark.anyio
async def test_mcp_json_starts_the_server_from_path_with_claude_project_dir(tmp_path: Path) -> None:
    """`.mcp.json` as the README shows it, started as Claude Code starts it: found on PATH, root from env."""
    installed_script()
    entry = mcp_json()["mcpServers"]["runwise"]
    project = make_project(tmp_path / "project", "from_env")
    elsewhere = make_project(tmp_path / "elsewhere", "from_cwd")
    env = child_env(tmp_path, path=f"{SCRIPTS}{os.pathsep}{os.defpath}", CLAUDE_PROJECT_DIR=str(project))
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env, cwd=str(elsewhere))
    assert await run_ids(params) == {"from_env"}


@pytest.mark.anyio
async def test_without_runwise_mcp_on_path_it_cannot_start(tmp_path: Path) -> None:
    """What the README warns about: Claude Code's PATH lacks the venv, the spawn fails with ENOENT."""
    installed_script()
    if shutil.which("runwise-mcp", path=os.defpath):
        pytest.skip("runwise-mcp is installed system-wide")
    entry = mcp_json()["mcpServers"]["runwise"]
    env = child_env(tmp_path, path=os.defpath)
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env)
    with pytest.raises(FileNotFoundError):
        await run_ids(params)


@pytest.mark.anyio
async def test_venv_absolute_path_needs_no_path(tmp_path: Path) -> None:
    script = installed_script()
    argv = [str(script) if word == VENV_PLACEHOLDER else word for word in readme_command(VENV_FORM)]
    project = make_project(tmp_path / "project", "abs_path")
    env = child_env(tmp_path, path=os.defpath, CLAUDE_PROJECT_DIR=str(project))
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=str(project))
    assert await run_ids(params) == {"abs_path"}


@pytest.mark.anyio
async def test_root_argument_wins_over_claude_project_dir(tmp_path: Path) -> None:
    installed_script()
    chosen = make_project(tmp_path / "chosen", "chosen_run")
    claude_dir = make_project(tmp_path / "claude_dir", "claude_run")
    argv = [str(chosen) if word == PROJECT_PLACEHOLDER else word for word in readme_command(ROOT_FORM)]
    env = child_env(tmp_path, path=f"{SCRIPTS}{os.pathsep}{os.defpath}", CLAUDE_PROJECT_DIR=str(claude_dir))
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=str(claude_dir))
    assert await run_ids(params) == {"chosen_run"}


# ---- the real `claude` CLI ---------------------------------------------------------------------

CLAUDE = shutil.which("claude")
needs_claude = pytest.mark.skipif(CLAUDE is None, reason="no claude on PATH (npm install @anthropic-ai/claude-code)")
# what uv and pip need to reach a package index through this machine's certificates, nothing else
PASS_THROUGH = ("SSL_CERT_FILE", "SSL_CERT_DIR", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_CACHE_DIR", "PIP_CERT")


def claude(project: Path, home: Path, path: str, *args: str, **extra: str) -> str:
    assert CLAUDE is not None
    env = child_env(home, path=path, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1", **extra)
    env.update({k: os.environ[k] for k in PASS_THROUGH if k in os.environ})
    done = subprocess.run(
        [CLAUDE, *args], cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def register(tmp_path: Path, argv: list[str], path: str, *, settings: bool = True) -> tuple[Path, Path]:
    """A tmp project with one JSONL run, the README's command added with --scope project, settings in HOME."""
    project, home = make_project(tmp_path / "project", "cc_run"), tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    if settings:
        shutil.copy(EXAMPLES / ".claude" / "settings.json", home / ".claude" / "settings.json")
    claude(project, home, path, "mcp", "add", "runwise", "--scope", "project", "--", *argv)
    return project, home


def status_line(listing: str) -> str:
    """The line of `claude mcp list` about the server named runwise."""
    (line,) = [line for line in listing.splitlines() if line.startswith("runwise: ")]
    return line


FORMS = [
    pytest.param(VENV_FORM, id="venv-absolute-path"),
    pytest.param(PATH_FORM, id="on-path"),
    pytest.param(UVX_FORM, id="uvx", marks=pytest.mark.skipif(shutil.which("uvx") is None, reason="no uvx on PATH")),
]


@needs_claude
@pytest.mark.parametrize("form", FORMS)
def test_claude_mcp_add_from_readme_connects(tmp_path: Path, form: list[str]) -> None:
    installed_script()
    argv = [
        w.replace(VENV_PLACEHOLDER, str(SCRIPTS / "runwise-mcp")).replace(CHECKOUT_PLACEHOLDER, str(REPO))
        for w in readme_command(form)
    ]
    path = os.defpath  # Claude Code's environment, without the venv
    if form == PATH_FORM:
        path = f"{SCRIPTS}{os.pathsep}{path}"  # as after `pipx install`: runwise-mcp is on PATH
    elif form == UVX_FORM:
        path = f"{Path(str(shutil.which('uvx'))).parent}{os.pathsep}{path}"
    project, home = register(tmp_path, argv, path)
    written = json.loads((project / ".mcp.json").read_text())["mcpServers"]["runwise"]
    assert (written["command"], written["args"]) == (argv[0], argv[1:])
    if form == PATH_FORM:  # the .mcp.json the README tells people to commit is what claude writes
        readme = mcp_json()["mcpServers"]["runwise"]
        assert (written["command"], written["args"]) == (readme["command"], readme["args"])
    got = claude(project, home, path, "mcp", "get", "runwise")  # starts the server, as `mcp list` does
    assert "Project config" in got and "Status: ✔ Connected" in got, got


@needs_claude
def test_claude_asks_approval_without_the_settings(tmp_path: Path) -> None:
    """The settings example is what approves the .mcp.json entry: without it the server waits."""
    installed_script()
    path = f"{SCRIPTS}{os.pathsep}{os.defpath}"
    project, home = register(tmp_path, PATH_FORM, path, settings=False)
    assert "Pending approval" in status_line(claude(project, home, path, "mcp", "list"))


@needs_claude
def test_claude_reports_a_command_not_on_path(tmp_path: Path) -> None:
    """What the README warns about, as Claude Code shows it."""
    installed_script()
    if shutil.which("runwise-mcp", path=os.defpath):
        pytest.skip("runwise-mcp is installed system-wide")
    project, home = register(tmp_path, PATH_FORM, os.defpath)
    assert "Failed to connect" in status_line(claude(project, home, os.defpath, "mcp", "list"))


@needs_claude
@pytest.mark.parametrize("settings", [True, False], ids=["with-settings", "without-settings"])
def test_a_claude_turn_calls_runwise_under_the_one_rule(tmp_path: Path, settings: bool) -> None:
    """A whole `claude -p` turn, the model scripted on 127.0.0.1 (tests/scripted_model.py).

    The README's first command registers the server (default scope). With the settings example in
    ~/.claude/settings.json, Claude Code lets the call through on the one rule `mcp__runwise` and
    the model receives runwise's answer; without it, Claude Code denies the call.
    """
    script = installed_script()
    project, home = make_project(tmp_path / "project", "cc_run"), tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    if settings:
        shutil.copy(EXAMPLES / ".claude" / "settings.json", home / ".claude" / "settings.json")
    argv = [str(script) if word == VENV_PLACEHOLDER else word for word in readme_command(VENV_FORM)]
    claude(project, home, os.defpath, "mcp", "add", "runwise", "--", *argv)
    model = ScriptedModel("mcp__runwise__list_runs", {"limit": 5})
    with serving(model) as url:
        out = claude(
            project,
            home,
            os.defpath,
            "-p",
            "Which runs are there?",
            "--output-format",
            "json",
            ANTHROPIC_BASE_URL=url,
            ANTHROPIC_API_KEY="not-a-real-key",
        )
    denied = [d["tool_name"] for d in json.loads(out)["permission_denials"]]
    (result,) = model.tool_results("toolu_runwise") or pytest.fail(f"the model never called runwise: {out}")
    content = result["content"]  # a string, or text blocks
    text = content if isinstance(content, str) else "".join(block.get("text", "") for block in content)
    if settings:
        assert denied == []
        assert not result.get("is_error")
        # what the model reads: Claude Code puts the answer's resource links first, as
        # "[Resource link: runs] runwise://runs (the run index)", then runwise's structured answer as JSON
        links, brace, rest = text.partition("{")
        assert "runwise://runs" in links
        answer = json.loads(brace + rest)
        assert [row[answer["runs"]["columns"].index("id")] for row in answer["runs"]["rows"]] == ["cc_run"]
    else:
        assert denied == ["mcp__runwise__list_runs"]
        assert result.get("is_error") and "cc_run" not in text



def http_add_command() -> list[str]:
    """The README's `claude mcp add --transport http ...` line (in "Serve it over HTTP"), as words."""
    text = README.read_text(encoding="utf-8")
    (line,) = [ln for ln in text.splitlines() if ln.startswith("claude mcp add --transport http runwise ")]
    return shlex.split(line)


@needs_claude
@pytest.mark.parametrize("right", [True, False], ids=["token", "wrong-token"])
def test_claude_connects_to_the_http_server_as_the_readme_registers_it(tmp_path: Path, right: bool) -> None:
    """`runwise-mcp --http` on loopback with a token; the README's registration line with its URL and token
    filled in: Claude Code's health check connects, and with a wrong token it does not."""
    from tests.test_http import TOKEN, server_env, serving

    words = http_add_command()
    assert words[:6] == ["claude", "mcp", "add", "--transport", "http", "runwise"], words
    assert words[6] == "https://host/mcp" and words[7:] == ["--header", "Authorization: Bearer $RUNWISE_TOKEN"]
    project, home = make_project(tmp_path / "project", "http_run"), tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    with serving(project, env=server_env(RUNWISE_TOKEN=TOKEN)) as served:
        sent = TOKEN if right else TOKEN + "-not"
        header = words[8].replace("$RUNWISE_TOKEN", sent)
        claude(project, home, os.defpath, "mcp", "add", "--transport", "http", "runwise", served.url, "--header",
               header)
        line = status_line(claude(project, home, os.defpath, "mcp", "list"))
    assert served.url in line, line
    assert ("✔ Connected" in line) == right and ("Failed to connect" in line) != right, line
