"""Where landed files come from and where the pipeline keeps its state (``paths.*``).

The landing area is a local folder or an fsspec URL (``s3://bucket/prefix``); the
workspace is a local folder. Files in landing are moved away once ingested, so the
two must be apart: a landing folder that is the workspace, contains it or lies inside it
would move the ledger, the history or ``mlflow.db`` (a config error names both paths).
Credentials never go in the landing URL or the reports URL (the config is stored with every
Prefect run).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from seriesflow.ops.secrets import redact_url, refuse_credentials


class PathsConfig(BaseModel):
    """Where data lands and where the pipeline keeps its state."""

    # a config section (frozen, unknown keys refused); an invalid URI may hold a password:
    # errors never echo the input
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    workspace: str = Field(
        "data/work",
        description="Runtime workspace: runs/, ledger, history, quarantine/, archive/, mlflow.db.",
    )
    landing: str = Field(
        "data/landing",
        description="Where new series files land: a local folder (outside the workspace) or an "
        "fsspec URL such as s3://bucket/prefix (credentials from the environment).",
    )
    reports_url: str | None = Field(
        None,
        description="Base http URL serving the workspace's runs/ folder, so the Prefect UI "
        "links Data Docs over http (a browser opens no file:// link). Unset: "
        "$SERIESFLOW_REPORTS_URL (make serve sets it); neither: the path is shown instead.",
    )

    @field_validator("reports_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if not value:
            return value
        # every link the runs write starts with it, so a credential here is in every artifact
        refuse_credentials(
            value,
            "paths.reports_url",
            "an authenticating proxy in front of the reports server asks the browser for them; "
            "docs/operations.md, Exposure",
        )
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"paths.reports_url {redact_url(value)!r} must be an http(s) URL")
        return value

    @field_validator("workspace", "landing")
    @classmethod
    def _no_placeholder(cls, value: str) -> str:
        if "{{" in value:
            raise ValueError(
                f"{value!r} still holds a template placeholder: set SERIESFLOW_WORKSPACE and "
                "SERIESFLOW_LANDING before `prefect deploy` (make serve does)"
            )
        return value

    @field_validator("landing")
    @classmethod
    def _no_credentials_in_landing(cls, value: str) -> str:
        return refuse_credentials(
            value, "paths.landing", "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a profile"
        )

    @model_validator(mode="after")
    def _landing_apart_from_workspace(self) -> PathsConfig:
        # Landing files are quarantined, archived or deleted: a landing folder that is the
        # workspace, holds it or lies in it would move the ledger, the history, mlflow.db.
        if is_url(self.landing) and not self.landing.startswith("file://"):
            return self  # an object store cannot hold the (local) workspace
        workspace, landing = self.workspace_path(), self.landing_path()
        if landing == workspace or workspace.is_relative_to(landing):
            where = "is" if landing == workspace else "contains"
        elif landing.is_relative_to(workspace):
            where = "sits inside"
        else:
            return self
        raise ValueError(
            f"paths.landing {landing} {where} the workspace {workspace}: files in landing are "
            "moved away after ingest, so the two must be apart (e.g. data/landing next to "
            "data/work)"
        )

    def workspace_path(self) -> Path:
        return Path(self.workspace).expanduser().resolve()

    def landing_location(self) -> str:
        """The landing as one string: an absolute local path, or the URL as configured
        (``file://`` URLs become paths; no trailing slash)."""
        if is_url(self.landing):
            if self.landing.startswith("file://"):
                return str(Path(self.landing[len("file://") :]).expanduser().resolve())
            return self.landing.rstrip("/")
        return str(self.landing_path())

    def landing_path(self) -> Path:
        """The local landing folder (symlinks resolved); an error for an object-store URL."""
        if is_url(self.landing) and not self.landing.startswith("file://"):
            raise ValueError(f"paths.landing {self.landing!r} is not a local folder")
        if self.landing.startswith("file://"):
            return Path(self.landing[len("file://") :]).expanduser().resolve()
        return Path(self.landing).expanduser().resolve()

    def resolved_reports_url(self) -> str | None:
        return self.reports_url or os.environ.get("SERIESFLOW_REPORTS_URL") or None


def is_url(location: str) -> bool:
    """``s3://...``, ``gs://...``, ``file://...``: a protocol before ``://``."""
    head, sep, _ = location.partition("://")
    return bool(sep) and head.replace("+", "").replace("-", "").isalnum() and len(head) > 1
