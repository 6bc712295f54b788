"""Anomaly thresholds: one list of fields (runwise.thresholds), the config model derived from it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from runwise.config import AnomalyThresholds, FileConfig, RunwiseConfig, parse_config_file, starter_config
from runwise.errors import ConfigError
from runwise.thresholds import Thresholds

FIELDS = dataclasses.fields(Thresholds)
SCHEMA_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


def breaking_values(f: dataclasses.Field[Any]) -> list[Any]:
    """A value just outside each bound of field `f`, and one that fails its check."""
    out: list[Any] = []
    for name, bound in f.metadata["bounds"].items():
        step = 1 if isinstance(f.default, int) else 1e-9
        out.append({"gt": bound, "ge": bound - step, "lt": bound, "le": bound + step}[name])
    if f.metadata["check"] is not None:
        out += [[500, 100], [-5, 10]]
    return out


BREAKING = [(f.name, v) for f in FIELDS for v in breaking_values(f)]


def test_every_field_has_a_bound_or_a_check() -> None:
    assert {name for name, _ in BREAKING} == {f.name for f in FIELDS}


def test_the_config_model_has_the_dataclass_fields_defaults_and_bounds() -> None:
    schema = AnomalyThresholds.model_json_schema()
    assert list(schema["properties"]) == [f.name for f in FIELDS]
    assert schema["additionalProperties"] is False
    for f in FIELDS:
        prop = schema["properties"][f.name]
        assert prop["description"] == f.metadata["description"]
        assert {SCHEMA_BOUNDS[k]: v for k, v in f.metadata["bounds"].items()} == {
            k: v for k, v in prop.items() if k in SCHEMA_BOUNDS.values()
        }
    assert AnomalyThresholds().thresholds() == Thresholds()


@pytest.mark.parametrize(("name", "value"), BREAKING, ids=[f"{n}={v}" for n, v in BREAKING])
def test_a_value_out_of_bounds_is_refused_by_both(tmp_path: Path, name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"invalid anomaly thresholds: {name} must be"):
        Thresholds(**{name: value})
    path = tmp_path / "runwise.json"
    path.write_text(json.dumps({"anomaly_detection": {name: value}}))
    with pytest.raises(ConfigError, match=f"'anomaly_detection.{name}'") as info:
        parse_config_file(path)
    assert "\n" not in str(info.value)


def test_the_starter_config_writes_every_threshold_and_reads_back(tmp_path: Path) -> None:
    data = starter_config("demo")
    assert list(data["anomaly_detection"]) == [f.name for f in FIELDS]
    (tmp_path / "runwise.json").write_text(json.dumps(data))
    assert RunwiseConfig.load(tmp_path, env={}).anomaly.thresholds() == Thresholds()


def test_configured_values_reach_the_checks(tmp_path: Path) -> None:
    file = FileConfig.model_validate({"anomaly_detection": {"spike_window": 7, "overfit_baseline_steps": [10, 50]}})
    th = RunwiseConfig(tmp_path, file, env={}).anomaly.thresholds()
    assert th == dataclasses.replace(Thresholds(), spike_window=7, overfit_baseline_steps=(10, 50))


def _findings(root: Path, anomaly_detection: dict[str, Any]) -> set[tuple[str, str]]:
    """(kind, metric) of every finding on run_b (a train/loss spike at step 150) with these thresholds."""
    from runwise.tools import TOOLS_BY_NAME
    from runwise.tools.anomalies import DetectAnomaliesInput

    (root / "runwise.json").write_text(json.dumps({"logs_dir": "logs", "anomaly_detection": anomaly_detection}))
    ask = DetectAnomaliesInput(run="run_b", max_anomalies=200)
    out = TOOLS_BY_NAME["detect_anomalies"].run(ask, RunwiseConfig.load(root))
    col = {c: i for i, c in enumerate(out.anomalies.columns)}
    return {(r[col["kind"]], r[col["metric"]]) for r in out.anomalies.rows}


def test_thresholds_in_runwise_json_change_what_the_checks_find(project: Path) -> None:
    # the planted spike is found with the defaults, and not once its threshold is far above its robust z
    assert ("spike", "train/loss") in _findings(project, {})
    assert ("spike", "train/loss") not in _findings(project, {"spike_threshold": 5000.0})
    # grad_norm sits between 1 and 2: below a vanishing threshold of 3 for the whole run
    assert ("vanishing_gradient", "grad_norm") not in _findings(project, {})
    assert ("vanishing_gradient", "grad_norm") in _findings(project, {"gradient_vanish_threshold": 3.0})
