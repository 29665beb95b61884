"""What the Prefect UI shows, rendered without Prefect: inline plots, report links, the decision.

A browser will not load ``file://`` images or links from an http page, so nothing here
produces one: plots go into markdown as small inline PNGs (``data:`` URIs, which the
Prefect UI renders), and files of a run folder (Data Docs) become http links under the
reports base URL (``paths.reports_url`` / ``SERIESFLOW_REPORTS_URL``; ``make serve``
serves the workspace's ``runs/`` folder there). The stages and the flow create the
artifacts; this module only writes their text.
"""

from __future__ import annotations

import base64
import io
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from seriesflow.evaluation.tables import metrics_markdown
from seriesflow.ops.secrets import refuse_credentials

# A markdown artifact is stored in the Prefect database and sent whole to every browser
# that opens it: keep each inline plot small and the whole report well under 1 MB.
PLOT_WIDTH = 760  # px: the width of the artifact pane on a laptop screen
PLOT_COLORS = 64  # a palette PNG: matplotlib plots use few colors, this keeps edges clean
PLOT_MAX_BYTES = 200_000


def png_data_uri(path: Path, width: int = PLOT_WIDTH, colors: int = PLOT_COLORS) -> str:
    """``path`` (a PNG) as a ``data:image/png;base64,...`` URI, at most ``width`` px wide,
    re-encoded with an adaptive palette of ``colors`` colors (typically 20-60 KB)."""
    from PIL import Image  # matplotlib's own image library

    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.width > width:
            height = round(image.height * width / image.width)
            image = image.resize((width, height), Image.Resampling.LANCZOS)
        small = image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
        buffer = io.BytesIO()
        small.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plots_markdown(plots: Iterable[Path], max_bytes: int = PLOT_MAX_BYTES) -> list[str]:
    """One inline image per plot (alt text = the file name), narrower if one is too big."""
    lines = []
    for plot in plots:
        width = PLOT_WIDTH
        uri = png_data_uri(plot, width)
        while len(uri) > max_bytes and width > 200:
            width = int(width * 0.7)
            uri = png_data_uri(plot, width)
        lines += [f"![{plot.stem}]({uri})", "", f"*{plot.name}* (in the run folder's `plots/`)", ""]
    return lines


def reports_link(base_url: str | None, runs_root: Path, path: Path) -> str | None:
    """The http URL of ``path`` (a file under ``runs_root``) under ``base_url``; None without
    a base URL. ``base_url`` serves ``runs_root``: ``<base>/<run-id>/02_validation/...``."""
    if not base_url:
        return None
    relative = Path(path).resolve().relative_to(Path(runs_root).resolve())
    refuse_credentials(
        base_url, "reports base URL", "put an authenticating proxy in front of the server"
    )
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"reports base URL {base_url!r} is not an http(s) URL")
    return base_url.rstrip("/") + "/" + urllib.parse.quote(relative.as_posix())


def data_docs_markdown(url: str | None, index: Path) -> str:
    """Where the Data Docs are, for the validation report: a link, or how to get one."""
    if url:
        return f"[Great Expectations Data Docs]({url})"
    return (
        f"Great Expectations Data Docs: `{index}` (open it from the run folder, or run "
        "`make serve`, which serves run folders over http and links them here; elsewhere "
        "set `SERIESFLOW_REPORTS_URL` to the URL that serves the workspace's `runs/`)."
    )


HEADLINES = {
    "completed": "{model} v{version} {verb}",
    "skipped": "Skipped: nothing new to train on",
    "rejected": "Rejected: no usable data arrived",
    "failed": "Failed",
}


def outcome_markdown(result: Mapping[str, Any], data_docs_url: str | None = None) -> str:
    """What a retrain run decided, for the flow run's own artifact (the run summary as prose)."""
    status = result.get("status", "failed")
    verb = "promoted to champion" if result.get("promoted") else "registered, not promoted"
    headline = HEADLINES.get(status, status).format(
        model=result.get("model_name"), version=result.get("model_version"), verb=verb
    )
    lines = [f"# {headline}", ""]
    if result.get("reason"):
        lines += [f"**Why:** {result['reason']}", ""]
    facts = [
        ("status", status),
        ("promotion gate rule", result.get("gate_rule")),
        ("rows / series trained on", _pair(result.get("rows"), result.get("series"))),
        ("files used", ", ".join(result.get("new_files") or []) or None),
        ("files quarantined", ", ".join(result.get("rejected_files") or []) or None),
        ("champion comparison", result.get("champion_note")),
        ("run folder", f"`{result['run_dir']}`" if result.get("run_dir") else None),
        ("Data Docs", f"[open]({data_docs_url})" if data_docs_url else None),
    ]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in facts if value not in (None, "")]
    metrics = result.get("metrics") or {}
    if metrics:
        lines += ["", "## Test metrics (original units)", "", metrics_markdown(metrics)]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    """A value that cannot break the table: no pipes, no line breaks."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _pair(a: Any, b: Any) -> str | None:
    return None if a is None else f"{a} / {b}"
