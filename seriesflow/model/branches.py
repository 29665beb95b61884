"""Branches of a routed model: which series train together (``per_series``, ``groups``).

A routed model (``seriesflow/model/lstm.py:route_series``) sends each series' windows to one
branch: its own (``train.per_series``) or its group's (``train.groups``: a stable hash of
the series id into ``k`` groups, or the value of a column). This module decides the
groups and the branches, builds a branch and routes them; training them is the train
stage's work (one task per branch in the retrain flow, ``flows/fanout.py``). No Prefect.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from seriesflow.config.pipeline import GroupsConfig, PipelineConfig, TrainConfig
from seriesflow.data.schema import SERIES_ID
from seriesflow.model.lstm import build_model, route_series
from seriesflow.model.saved_model import ModelSpec
from seriesflow.model.windows import Windows


def group_of_series(
    series: list[str], groups: GroupsConfig, frame: pd.DataFrame | None = None
) -> dict[str, str]:
    """Each series' group name: ``hash-<i>`` (sha256 of the id, mod k: the same in every
    process and Python version) or ``<column>=<value>`` (``frame`` holds series_id and the
    column; one value per series)."""
    if groups.by == "hash":
        if groups.k is None or groups.k < 1:
            raise ValueError(f"train.groups.k must be at least 1, got {groups.k}")
        width = len(str(groups.k - 1))
        return {sid: f"hash-{_stable_hash(sid) % groups.k:0{width}d}" for sid in series}
    column = str(groups.column)
    if frame is None or column not in frame.columns:
        found = [] if frame is None else [str(c) for c in frame.columns]
        raise ValueError(
            f"train.groups.column '{column}' is not in the data (columns: {found}); "
            "set train.groups.column to a column of every series' rows"
        )
    pairs = frame[[SERIES_ID, column]].astype({SERIES_ID: str}).drop_duplicates()
    if pairs[column].isna().any():
        bad = pairs.loc[pairs[column].isna(), SERIES_ID].iloc[0]
        raise ValueError(f"train.groups.column '{column}' is empty for series '{bad}'")
    counts = pairs.groupby(SERIES_ID)[column].nunique()
    if (counts > 1).any():
        bad = counts[counts > 1].index[0]
        values = sorted(pairs.loc[pairs[SERIES_ID] == bad, column].tolist())[:5]
        raise ValueError(
            f"train.groups.column '{column}' must be constant within a series; series "
            f"'{bad}' has {values}"
        )
    value_of = dict(zip(pairs[SERIES_ID], pairs[column], strict=True))
    missing = [sid for sid in series if sid not in value_of]
    if missing:
        raise ValueError(f"train.groups.column '{column}': no rows for series {missing[:5]}")
    return {sid: f"{column}={_group_value(value_of[sid])}" for sid in series}


def _stable_hash(text: str) -> int:
    # not hash(): Python salts str hashes per process (PYTHONHASHSEED)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _group_value(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))  # a numeric code 3.0 names group "3"
    return str(value)


@dataclass(frozen=True)
class Branch:
    """One branch of a routed model: a series (per_series) or a group and its series."""

    index: int
    name: str
    series: list[str]
    seed: int
    kind: str  # "series" or "group"

    @property
    def label(self) -> str:
        """A short, safe name for task runs and Keras layers (ids may hold anything)."""
        return f"{self.kind}_{self.index}"


def plan_branches(spec: ModelSpec, cfg: TrainConfig) -> list[Branch]:
    """The branches of a routed model, in branch order, each with its own seed."""
    kind = "group" if spec.groups else "series"
    members = {name: [] for name in spec.branches}
    for sid, group in zip(spec.series, spec.groups or spec.series, strict=True):
        members[group].append(sid)
    return [
        Branch(k, name, members[name], cfg.seed + k + 1, kind)
        for k, name in enumerate(spec.branches)
    ]


def build_branch(spec: ModelSpec, cfg: TrainConfig, branch: Branch, zero_head: bool) -> Any:
    return build_model(
        spec.timesteps,
        len(spec.features),
        spec.outputs,
        cfg,
        name=branch.label,
        seed=branch.seed,
        zero_head=zero_head,
        step_rows=spec.step_rows,
    )


def route_branches(spec: ModelSpec, branches: list[Any]) -> Any:
    """The one saved model: each series' windows go to its branch (its group's, if grouped)."""
    index = {name: k for k, name in enumerate(spec.branches)}
    branch_of = [index[g] for g in spec.groups] if spec.groups else None
    return route_series(branches, spec.timesteps, len(spec.features), branch_of)


def groups_for(config: PipelineConfig, data: Windows, validated: Path | None) -> dict | None:
    """Each series' group for ``train.groups`` (None when not grouping)."""
    groups = config.train.groups
    if groups is None:
        return None
    series = data.present_series()
    frame = None
    if groups.by == "column":
        if validated is None:
            raise ValueError("train.groups.by=column needs the validated data to read groups")
        names = pq.read_schema(validated).names
        wanted = [c for c in (SERIES_ID, groups.column) if c in names]
        frame = pq.read_table(validated, columns=wanted).to_pandas()
    return group_of_series(series, groups, frame)
