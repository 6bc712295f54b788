"""One exception tree for runwise; each front end catches `RunwiseError` once.

* RunwiseError
  + ConfigError        runwise.json or an environment setting is invalid (key)
  + SourceError        a log file could not be read (path, offset)
    - UnsupportedFormat  a file is not in the format its name claims
    - CorruptRecord      a record failed its checksum or could not be decoded
  + NegativeStep       a `ref@STEP` whose step is below 0 (also a ValueError)
  + RunNotFound        no run matches a reference (ref, candidates)
  + AmbiguousRun       several runs match a reference (ref, candidates)
  + UnknownMetric      the run has no metric of that name (metric, available)
  + OutsideRoot        a path points outside the configured roots (path)
  + CloudError         W&B's servers (wandb.Api) could not answer: no wandb, no key, no network, a timeout
"""

from __future__ import annotations

from collections.abc import Sequence


class RunwiseError(Exception):
    """Base class of every error runwise anticipates; its message is meant for the user."""


class ConfigError(RunwiseError):
    """runwise.json or an environment setting is invalid."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class SourceError(RunwiseError):
    """A log file could not be read."""

    def __init__(self, message: str, *, path: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.path, self.offset = path, offset


class UnsupportedFormat(SourceError):
    """A file is not in the format its name claims."""


class CorruptRecord(SourceError):
    """A record failed its checksum or could not be decoded."""


class NegativeStep(RunwiseError, ValueError):
    """A `ref@STEP` whose step is below 0 (a ValueError too, so input validators report it as theirs)."""


def _names(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    more = len(items) - limit
    return shown + (f" (+{more} more)" if more > 0 else "")


class RunNotFound(RunwiseError):
    """No run matches a reference."""

    def __init__(
        self, ref: str, candidates: Sequence[str] = (), *, total: int | None = None, missing_path: bool = False
    ) -> None:
        head = f"no log file or run directory at {ref!r}" if missing_path else f"no run matches {ref!r}"
        if total == 0:
            msg = f"{head}: no runs were found (check wandb_dir / logs_dir or --root)"
        elif candidates:
            msg = f"{head}; closest: {_names(candidates)}"
        else:
            msg = f"{head}; list the runs to see what exists (list_runs, or `runwise list`)"
        super().__init__(msg)
        self.ref, self.candidates = ref, list(candidates)


class AmbiguousRun(RunwiseError):
    """Several runs match a reference."""

    def __init__(self, ref: str, candidates: Sequence[str]) -> None:
        super().__init__(
            f"{ref!r} matches {len(candidates)} runs: {_names(candidates)}; use a longer id "
            "or a source-qualified reference such as 'wandb:<id>'"
        )
        self.ref, self.candidates = ref, list(candidates)


class UnknownMetric(RunwiseError):
    """The run has no metric of that name."""

    def __init__(self, metric: str, available: Sequence[str], *, closest: Sequence[str] = ()) -> None:
        hint = f"closest: {_names(closest)}; " if closest else ""
        super().__init__(f"unknown metric {metric!r}; {hint}available: {_names(sorted(available), 20)}")
        self.metric, self.available = metric, list(available)


class OutsideRoot(RunwiseError):
    """A path points outside the configured roots."""

    def __init__(self, path: str, roots: Sequence[str]) -> None:
        super().__init__(f"path {path!r} is outside the project roots ({_names(roots)}); refusing to read it")
        self.path = path


class CloudError(RunwiseError):
    """W&B's servers could not answer a cloud reference (runwise.parsers.wandb_cloud): the message says why."""


def why_unread(exc: BaseException, *, limit: int | None = None) -> str:
    """Why a side file (a config, a metrics summary) was not read, in one line: an OSError's strerror, "nested
    too deeply" for a RecursionError, else the first line of the message (cut to `limit` characters)."""
    if isinstance(exc, OSError):
        return str(exc.strerror or exc)
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    text = str(exc)
    return text.splitlines()[0][:limit] if text else type(exc).__name__
