"""runwise.json + environment -> one validated `RunwiseConfig`.

Project root: `RUNWISE_PROJECT_ROOT`, else `CLAUDE_PROJECT_DIR`, else the working directory.
Directories: `wandb_dir` / `logs_dir` / `tensorboard_dirs` in runwise.json, overridden by
`RUNWISE_WANDB_DIR` / `RUNWISE_LOGS_DIR`; `dvclive_dirs` (default `dvclive`), replaced by
`RUNWISE_DVCLIVE_DIR`; `trackio_dir`, replaced by `RUNWISE_TRACKIO_DIR` or `TRACKIO_DIR`; `hf_dirs`,
replaced by `RUNWISE_HF_DIR`; `csv_dirs`, replaced by `RUNWISE_CSV_DIR`; relative paths are
relative to the project root.
A root (`--root`, RUNWISE_PROJECT_ROOT) or a `tensorboard_dirs` entry may be a URL on object storage
(`s3://bucket/prefix`, `gs://...`): it is read through a local mirror (runwise.remote).
"""

from __future__ import annotations

import dataclasses
import json
import os
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from runwise._root import cache_dir_of, project_root_dir, root_url
from runwise.errors import ConfigError, OutsideRoot, SourceError
from runwise.thresholds import Thresholds, violation

CONFIG_FILE = "runwise.json"
DEFAULT_TB_DIRS = ("runs", "logs", "lightning_logs", "tb_logs")


class MetricDisplay(BaseModel):
    model_config = ConfigDict(extra="allow")
    display: str | None = None
    format: str | None = None
    higher_is_better: bool | None = None


class MetricGroup(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    display_name: str = ""
    metrics: dict[str, MetricDisplay] = Field(default_factory=dict)


class Schema(BaseModel):
    """How to read a project's metrics; every key is optional (aliases are recognised without it)."""

    model_config = ConfigDict(extra="allow")
    loss_key: str | None = None
    step_key: str | None = None
    primary_metric: str | None = None
    primary_metric_name: str | None = None
    validation_sets: dict[str, str] = Field(default_factory=dict)
    groups: list[MetricGroup] = Field(default_factory=list)

    def higher_is_better(self, metric: str) -> bool | None:
        for g in self.groups:
            m = g.metrics.get(metric)
            if m is not None and m.higher_is_better is not None:
                return m.higher_is_better
        return None


class _ThresholdsModel(BaseModel):
    """Base of AnomalyThresholds, whose fields are derived from runwise.thresholds.Thresholds."""

    model_config = ConfigDict(extra="forbid")

    def thresholds(self) -> Thresholds:
        """The same values as the dataclass the anomaly checks take."""
        return Thresholds(**dict(self))


def _derive_thresholds_model() -> type[_ThresholdsModel]:
    """A pydantic model with the fields, defaults, bounds and descriptions of `Thresholds`."""
    hints = get_type_hints(Thresholds)
    spec: dict[str, Any] = {}
    for f in dataclasses.fields(Thresholds):
        kind: Any = hints[f.name]
        if f.metadata["check"] is not None:
            kind = Annotated[kind, AfterValidator(partial(_checked, f.metadata))]
        spec[f.name] = (kind, Field(default=f.default, description=f.metadata["description"], **f.metadata["bounds"]))
    return create_model(
        "AnomalyThresholds", __base__=_ThresholdsModel, __module__=__name__,
        __doc__="Thresholds of the anomaly checks (runwise.json's `anomaly_detection`).", **spec,
    )


def _checked(spec: Any, value: Any) -> Any:
    why = violation(spec, value)
    if why is not None:
        raise ValueError(why)
    return value


if TYPE_CHECKING:
    class AnomalyThresholds(_ThresholdsModel):
        """Thresholds of the anomaly checks (runwise.json's `anomaly_detection`)."""
else:
    AnomalyThresholds = _derive_thresholds_model()


class FileConfig(BaseModel):
    """The contents of runwise.json."""

    model_config = ConfigDict(extra="allow")
    project_name: str = "ML Project"
    wandb_dir: str | None = None
    logs_dir: str | None = None
    tensorboard_dirs: list[str] = Field(default_factory=list)
    dvclive_dirs: list[str] = Field(default_factory=list)  # DVCLive run directories (runwise.parsers.dvclive)
    trackio_dir: str | None = None  # Trackio's <project>.db folder (runwise.parsers.trackio); never its home default
    hf_dirs: list[str] = Field(default_factory=list)  # searched for Hugging Face Trainer output dirs (parsers.hf)
    csv_dirs: list[str] = Field(default_factory=list)  # directories whose every *.csv is a run (runwise.parsers.csvlog)
    downsample_interval: int = Field(default=1000, ge=1)
    schema_inline: Schema = Field(default_factory=lambda: Schema())
    anomaly_detection: AnomalyThresholds = Field(default_factory=lambda: AnomalyThresholds())
    cache: bool = True
    cache_max_bytes: int = Field(default=2 * 1024**3, ge=0, description="most bytes the disk cache may hold; 0: none")
    # W&B cloud runs (`cloud:RUN_ID`, runwise.parsers.wandb_cloud): default project and entity, and the
    # seconds a request to W&B may stay unanswered (RUNWISE_WANDB_TIMEOUT overrides it)
    wandb_project: str | None = None
    wandb_entity: str | None = None
    wandb_timeout: float = Field(default=30.0, gt=0, le=600)
    # MLflow's store when not `mlflow.db` / `mlruns` at the root: `sqlite:///path.db`, `file:path` or a directory
    # (RUNWISE_MLFLOW_TRACKING_URI, then MLFLOW_TRACKING_URI, override it)
    mlflow_tracking_uri: str | None = None


class RunwiseConfig:
    """The validated configuration every tool receives."""

    def __init__(
        self, root: Path, file: FileConfig | None = None, *, env: dict[str, str] | None = None,
        remote_url: str | None = None,
    ) -> None:
        env = dict(os.environ) if env is None else env
        self.root = root.resolve()
        self.cache_dir = cache_dir_of(env)
        self.remote_url = remote_url  # the project root's URL when it is on object storage (`s3://...`), else None
        # object storage read through local mirrors (runwise.remote): their URLs, the root's first
        self.remotes: list[str] = [remote_url] if remote_url else []
        self.remote_notes: dict[str, str] = {}  # URL -> why its mirror could not be refreshed (for discovery)
        self.file = file or FileConfig()
        self.project_name = self.file.project_name
        self.schema = self.file.schema_inline
        self.anomaly = self.file.anomaly_detection
        self.downsample_interval = self.file.downsample_interval
        wandb_dir = self._dir(env.get("RUNWISE_WANDB_DIR") or self.file.wandb_dir, None)
        if wandb_dir is None:
            dot = self.root / ".wandb"
            wandb_dir = dot if (dot.is_dir() and not (self.root / "wandb").is_dir()) else self.root / "wandb"
        self.wandb_dir: Path = wandb_dir
        self.logs_dir: Path = self._dir(env.get("RUNWISE_LOGS_DIR") or self.file.logs_dir, None) or self.root / "logs"
        tb = [self._remote_dir(d) if "://" in d else self._dir(d, None) for d in self.file.tensorboard_dirs]
        self.tensorboard_dirs = [self.root / d for d in DEFAULT_TB_DIRS] + [d for d in tb if d is not None]
        dvc_env = env.get("RUNWISE_DVCLIVE_DIR")
        dvc = self._dirs(dvc_env, self.file.dvclive_dirs)
        self.dvclive_dirs: list[Path] = dvc if dvc_env else [self.root / "dvclive", *dvc]
        trackio_dir = env.get("RUNWISE_TRACKIO_DIR") or env.get("TRACKIO_DIR") or self.file.trackio_dir
        # Trackio's folders: the configured one, then trackio/ at the root; never trackio's default under the home dir
        named = self._dir(trackio_dir, None)
        self.trackio_dirs: list[Path] = ([named] if named is not None else []) + [self.root / "trackio"]
        self.hf_dirs = self._dirs(env.get("RUNWISE_HF_DIR"), self.file.hf_dirs)
        self.csv_dirs = self._dirs(env.get("RUNWISE_CSV_DIR"), self.file.csv_dirs)
        self.cache_max_bytes = self.file.cache_max_bytes
        no_cache = env.get("RUNWISE_NO_CACHE", "") not in ("", "0")
        self.cache_enabled = self.file.cache and self.cache_max_bytes > 0 and not no_cache
        self.wandb_project: str | None = self.file.wandb_project
        self.wandb_entity: str | None = self.file.wandb_entity
        self.wandb_timeout = _seconds(env.get("RUNWISE_WANDB_TIMEOUT"), self.file.wandb_timeout)
        self.mlflow_tracking_uri: str | None = (
            env.get("RUNWISE_MLFLOW_TRACKING_URI") or env.get("MLFLOW_TRACKING_URI") or self.file.mlflow_tracking_uri
        )
        self.wandb_state: str | None = None  # cloud listings: only runs in this state (`runwise api --state`)

    def _remote_dir(self, url: str) -> Path:
        """The local mirror of a `tensorboard_dirs` entry that is a URL (synced before each discovery)."""
        from runwise import remote

        local = remote.local_root(url, self.cache_dir)
        self.remotes.append(remote.normalise(url))
        return local

    def _dirs(self, env_value: str | None, listed: list[str]) -> list[Path]:
        """A source's directories: the environment's one, which replaces the list, else runwise.json's."""
        found = (self._dir(v, None) for v in ([env_value] if env_value else listed))
        return [d for d in found if d is not None]

    def _dir(self, value: str | None, default: str | None) -> Path | None:
        if not value:
            return None if default is None else self.root / default
        p = Path(value).expanduser()
        return (p if p.is_absolute() else self.root / p).resolve()

    @cached_property
    def roots(self) -> list[Path]:
        """Directories runwise may read, resolved: the project root and every configured log directory.

        A configured (or default) directory that is itself a link counts as where it points: a
        `wandb -> /scratch/wandb` link makes /scratch/wandb a root; links *inside* a root do not.
        """
        out: list[Path] = []
        extra: list[Path] = []
        if self.mlflow_tracking_uri:  # the configured MLflow store's folder
            from runwise.parsers.mlflow import parse_uri

            kind, store = parse_uri(self.mlflow_tracking_uri, self.root)
            extra = [store.parent if kind == "sqlite" else store] if kind else []
        dirs = [*self.tensorboard_dirs, *self.dvclive_dirs, *self.hf_dirs, *self.trackio_dirs, *self.csv_dirs]
        for p in [self.root, self.wandb_dir, self.logs_dir, *dirs, *extra]:
            try:
                r = p.resolve()
            except (OSError, RuntimeError):  # a loop of links: not a directory anything can be read from
                continue
            if r not in out:
                out.append(r)
        return out

    def relative(self, path: Path) -> str:
        """`path` relative to the project root as found, else as resolved, else as given."""
        for p in (path, path.resolve()):
            try:
                return p.relative_to(self.root).as_posix()
            except ValueError:
                continue
        return str(path)

    def check_inside(self, path: Path) -> Path:
        """Resolve `path` (relative to the root) and refuse it unless it lies under a root.

        A path that cannot be resolved at all (a NUL byte, `~nobody`, a loop of links) is a
        SourceError naming it.
        """
        try:
            p = path.expanduser()
            p = (p if p.is_absolute() else self.root / p).resolve()
        except (ValueError, RuntimeError, OSError) as exc:
            shown = repr(str(path)[:100])
            raise SourceError(f"cannot use the path {shown}: {exc}", path=str(path)[:100]) from exc
        for r in self.roots:
            if p == r or r in p.parents:
                return p
        raise OutsideRoot(str(path), [str(r) for r in self.roots])

    @classmethod
    def load(cls, root: str | Path | None = None, *, env: dict[str, str] | None = None) -> RunwiseConfig:
        """Read runwise.json from the project root (if any) and apply the environment."""
        env = dict(os.environ) if env is None else env
        url = root_url(root, env)
        if url is not None:
            return cls._load_remote(url, env)
        root_path = project_root_dir(root, env)
        path = root_path / CONFIG_FILE
        file_cfg = FileConfig()
        if path.is_file():
            file_cfg = parse_config_file(path)
        return cls(root_path, file_cfg, env=env)

    @classmethod
    def _load_remote(cls, url: str, env: dict[str, str]) -> RunwiseConfig:
        """The configuration of a project root on object storage: its mirror, synced now, is the root.

        A mirror synced before stays usable when the store cannot be reached: discovery then says so.
        """
        from runwise import remote

        url = remote.normalise(url)
        cache_dir = cache_dir_of(env)
        local = remote.local_root(url, cache_dir)
        note = None
        remote.begin(url, cache_dir)  # the store worker lists and fetches while the readers are imported here
        from runwise import parsers

        parsers.import_all()
        try:
            done = remote.sync(url, cache_dir)
            note = remote.failed_note(url, done) if done is not None and done.failed else None
        except ConfigError as exc:
            if not (local.parent / remote.MANIFEST).is_file():
                raise
            note = f"{url} not refreshed, showing the copy synced before: {exc}"
        path = local / CONFIG_FILE
        cfg = cls(local, parse_config_file(path) if path.is_file() else FileConfig(), env=env, remote_url=url)
        if note:
            cfg.remote_notes[url] = note
        return cfg


def _seconds(text: str | None, default: float) -> float:
    """RUNWISE_WANDB_TIMEOUT: seconds above 0, at most 600; unset or empty: `default`."""
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 600:
        raise ConfigError(f"RUNWISE_WANDB_TIMEOUT must be seconds above 0 and at most 600, got {text!r}",
                          key="RUNWISE_WANDB_TIMEOUT")
    return value


def parse_config_file(path: Path) -> FileConfig:
    """Validate runwise.json; an invalid file is a ConfigError naming the key."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path.name}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} must hold a JSON object, got {type(data).__name__}")
    try:
        return FileConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path.name}: invalid value for {key!r}: {err['msg']}", key=key) from exc


def starter_config(name: str) -> dict[str, Any]:
    """The runwise.json that `runwise init` writes."""
    return {
        "project_name": name,
        "wandb_dir": "wandb",
        "logs_dir": "logs",
        "tensorboard_dirs": [],
        "downsample_interval": 1000,
        "schema_inline": {
            "loss_key": "train/loss",
            "step_key": "_step",
            "primary_metric": "val/loss",
            "primary_metric_name": "Val loss",
            "validation_sets": {"val": "Validation"},
            "groups": [
                {
                    "name": "training",
                    "display_name": "Training",
                    "metrics": {
                        "train/loss": {"display": "Loss", "format": ".4f", "higher_is_better": False},
                        "val/loss": {"display": "Val loss", "format": ".4f", "higher_is_better": False},
                    },
                }
            ],
        },
        "anomaly_detection": AnomalyThresholds().model_dump(mode="json"),  # every threshold
    }
