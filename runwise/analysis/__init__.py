"""Pure functions over numpy arrays: downsampling, statistics, sparklines, stability, anomalies,
comparison helpers and metric-name aliases. No I/O, no logging, no pydantic.

Series come as `steps` (int64, 1-D, sorted ascending, repeats allowed) and `values` (float64,
same length, NaN/inf kept: they are findings). Bad arguments raise ValueError.
"""

from __future__ import annotations

from runwise.analysis.aliases import ROLES, find_metric, group_prefix, higher_is_better, is_validation
from runwise.analysis.anomalies import (
    CHECKS,
    Anomaly,
    AnomalyReport,
    Thresholds,
    detect_anomalies,
    find_spikes,
)
from runwise.analysis.compare import config_diff, flatten_config, percent_change, value_at_step
from runwise.analysis.downsample import Downsampled, downsample
from runwise.analysis.sparkline import sparkline
from runwise.analysis.stability import Stability, rolling_std, stability
from runwise.analysis.stats import SeriesStats, series_stats

__all__ = [
    "CHECKS",
    "ROLES",
    "Anomaly",
    "AnomalyReport",
    "Downsampled",
    "SeriesStats",
    "Stability",
    "Thresholds",
    "config_diff",
    "detect_anomalies",
    "downsample",
    "find_metric",
    "find_spikes",
    "flatten_config",
    "group_prefix",
    "higher_is_better",
    "is_validation",
    "percent_change",
    "rolling_std",
    "series_stats",
    "sparkline",
    "stability",
    "value_at_step",
]
