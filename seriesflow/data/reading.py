"""Reading landed files: one CSV/Parquet file as the canonical long frame, or why not.

``read_series_file`` turns one file into the canonical long frame or raises
``DataRejected`` naming the file, the check, the column and example rows; its last step,
``check_ingest_schema``, holds the rows to the schema the ingest stage writes, so one file
can never fail that write for the others.
``stack_with_history`` lays the new rows after the accepted history, tagged by source
file; de-duplication happens in validate, after each file has passed its own checks,
so a rejected file never touches accepted rows. The ingest task (``tasks/ingest.py``)
lists, fetches and writes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seriesflow.config.pipeline import ColumnsConfig, IngestConfig
from seriesflow.data.errors import CheckFailure, DataRejected, example_rows, hidden_characters
from seriesflow.data.schema import LABEL, SERIES_ID, SOURCE_FILE, SOURCE_ROW, TIMESTAMP, VALUE
from seriesflow.workspace.history import HISTORY_SOURCE, accepted_schema
from seriesflow.workspace.ledger import LandedFile

# An explicit UTC offset or "Z" after a clock time ("2026-01-01" alone has none).
_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.I)

# pandas' default missing-value spellings (read_csv's na_values), kept for every column but
# the series id: an id is a name, and "NA" (Namibia), "None" or "nan" are names like any.
_MISSING_TEXT = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip


def _reject(
    file: str,
    check: str,
    column: str | None,
    message: str,
    frame=None,
    mask=None,
    count: int | None = None,
) -> DataRejected:
    examples = example_rows(frame, mask) if frame is not None and mask is not None else []
    return DataRejected([CheckFailure(file, check, column, message, count, examples)])


def _read_raw(path: Path, name: str, missing_in: list[str]) -> pd.DataFrame:
    """The file as read: a CSV as text (missing-value spellings only in ``missing_in``)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            # Strings first: coercion below reports the raw text that failed. The series id
            # column is not in ``missing_in``: only an empty id is missing (below).
            frame = pd.read_csv(
                path,
                dtype=str,
                encoding="utf-8",
                skipinitialspace=True,
                keep_default_na=False,
                na_values={column: _MISSING_TEXT for column in missing_in},
            )
        except UnicodeDecodeError as exc:
            raise _reject(
                name,
                "utf8_encoding",
                None,
                f"the file is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                "re-export it as UTF-8",
            ) from exc
        except pd.errors.EmptyDataError as exc:
            raise _reject(
                name, "not_empty", None, "the file is empty (no header, no rows)"
            ) from exc
        except pd.errors.ParserError as exc:
            raise _reject(
                name,
                "csv_parses",
                None,
                f"malformed CSV: {str(exc).strip()}; check quoting and the "
                "number of fields per line",
            ) from exc
        frame.index = frame.index + 2  # file line numbers: the header is line 1
        return frame
    if suffix in (".parquet", ".pq"):
        try:
            return pq.read_table(path).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise _reject(
                name,
                "parquet_readable",
                None,
                f"not a readable Parquet file ({exc}); it may be truncated or still being copied",
            ) from exc
    raise _reject(
        name,
        "file_readable",
        None,
        f"'{suffix}' is in ingest.extensions, but the reader knows only .csv, .parquet and "
        ".pq; rename the file to its format's extension, or drop the type from the list",
    )


def _parse_timestamps(raw: pd.Series, tz: str, name: str, frame: pd.DataFrame) -> pd.Series:
    """The timestamp column in microseconds UTC (the canonical schema), or ``DataRejected``."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return _microseconds(raw.dt.tz_convert("UTC"), name, frame)
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        # a Parquet column without a timezone: local times in ``tz``, as in a CSV
        return _microseconds(_localize(raw, raw.notna(), tz, name, frame), name, frame)
    text = raw.astype("string").str.strip()
    present = text.notna()
    # Parse first: a value that is no timestamp at all is the error to report.
    unparsed = present & pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce").isna()
    if unparsed.any():
        raise _reject(
            name,
            "timestamp_parses",
            TIMESTAMP,
            "timestamps that are not ISO 8601 dates/times (e.g. 2026-01-01T13:00:00Z)",
            frame,
            unparsed,
            int(unparsed.sum()),
        )
    has_offset = text.str.contains(_OFFSET, na=False)
    if has_offset[present].any() and not has_offset[present].all():
        raise _reject(
            name,
            "single_timezone_convention",
            TIMESTAMP,
            "some timestamps carry a UTC offset and some do not; write all of "
            "them with an offset (e.g. 2026-01-01T00:00:00Z) or none",
            frame,
            present & ~has_offset,
            int((present & ~has_offset).sum()),
        )
    if has_offset[present].all():
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    else:
        local = pd.to_datetime(text, format="ISO8601", errors="coerce")
        parsed = _localize(local, present, tz, name, frame)
    return _microseconds(parsed, name, frame)


def _localize(
    local: pd.Series, present: pd.Series, tz: str, name: str, frame: pd.DataFrame
) -> pd.Series:
    """Naive local times in ``tz`` as UTC; a time a daylight-saving change makes ambiguous
    or skips is rejected (CSV text and naive Parquet columns alike), never guessed."""
    parsed = local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    bad = present & parsed.isna()
    if bad.any():
        raise _reject(
            name,
            "timestamp_parses",
            TIMESTAMP,
            f"local times that do not exist or are ambiguous in {tz} (a daylight-saving "
            "change); write them with a UTC offset",
            frame,
            bad,
            int(bad.sum()),
        )
    return parsed


def _microseconds(parsed: pd.Series, name: str, frame: pd.DataFrame) -> pd.Series:
    """UTC timestamps in microseconds. Finer digits are kept only when they are zero
    (``.123456000`` is ``.123456``); a non-zero nanosecond part is rejected, not cut,
    so two distinct times never become one and nothing changes without a word."""
    finer = parsed.notna() & (parsed.dt.nanosecond != 0)
    if finer.any():
        raise _reject(
            name,
            "timestamp_precision",
            TIMESTAMP,
            "timestamps finer than a microsecond (a non-zero digit after the 6th of the "
            "fraction of a second); the pipeline keeps microseconds, so round them to 6 digits",
            frame,
            finer,
            int(finer.sum()),
        )
    return parsed.astype("datetime64[us, UTC]")


def read_series_file(
    path: Path, columns: ColumnsConfig, cfg: IngestConfig, name: str | None = None
) -> pd.DataFrame:
    """One landed file as the canonical frame (series_id, timestamp, value, covariates).

    Raises ``DataRejected`` for anything that is not a table of series rows: a name with
    control characters, unknown type, unreadable bytes, no rows, missing columns, text
    where numbers belong, timestamps that do not parse, mix timezone conventions or are
    finer than microseconds, rows the ingest schema refuses (no series id, no timestamp).
    """
    name = name or path.name
    hidden = hidden_characters(name)
    if hidden:
        raise _reject(
            name,
            "file_name_printable",
            None,
            f"the file name holds control characters {hidden} (a newline in a name can forge "
            "log lines); rename the file without them",
        )
    if path.suffix.lower() not in {e.lower() for e in cfg.extensions}:
        raise _reject(
            name,
            "known_file_type",
            None,
            f"unknown file type '{path.suffix or '(none)'}'; the landing folder "
            f"takes {', '.join(cfg.extensions)} (add the type to ingest.extensions "
            "if it is one of these formats under another name)",
        )
    wanted = {columns.series_id: SERIES_ID, columns.timestamp: TIMESTAMP, columns.value: VALUE}
    wanted.update({c: c for c in columns.kept})
    if columns.label:
        wanted[columns.label] = LABEL
    raw = _read_raw(path, name, [c for c in wanted if c != columns.series_id])
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise _reject(
            name,
            "required_columns",
            missing[0],
            f"missing column(s) {missing}; the file has {list(map(str, raw.columns))}. "
            "Rename them in the file or set columns.* in the config",
            raw,
            pd.Series(True, index=raw.index),
        )
    if raw.empty:
        raise _reject(name, "not_empty", None, "the file has a header but no rows")
    frame = raw[list(wanted)].rename(columns=wanted)

    out = pd.DataFrame(index=frame.index)
    ids = frame[SERIES_ID].astype("string").str.strip()
    out[SERIES_ID] = ids.astype("str")
    # an empty (or blank) id is missing: check_ingest_schema rejects it with its rows
    out.loc[ids.isna() | (ids == ""), SERIES_ID] = None
    out[TIMESTAMP] = _parse_timestamps(frame[TIMESTAMP], cfg.timezone, name, frame)
    for column in [VALUE, *columns.kept]:
        values = frame[column]
        numeric = pd.to_numeric(values, errors="coerce").astype("float64")
        not_numeric = values.notna() & numeric.isna() & ~_is_nan_text(values)
        if not_numeric.any():
            raise _reject(
                name,
                "values_are_numeric",
                column,
                f"non-numeric values in '{column}'",
                frame,
                not_numeric,
                int(not_numeric.sum()),
            )
        out[column] = numeric
    if columns.label:
        # class names are text; blanks stay missing (validation rejects them)
        out[LABEL] = frame[LABEL].astype("string").str.strip().astype("str")
        out.loc[frame[LABEL].isna(), LABEL] = None
    check_ingest_schema(out, name, columns)
    return out


def check_ingest_schema(frame: pd.DataFrame, name: str, columns: ColumnsConfig) -> None:
    """Raise ``DataRejected`` unless ``frame`` converts to the ingest schema as it is.

    The same conversion the ingest stage's Parquet write does, on one file's rows alone:
    a file that would break the write (a missing series id or timestamp, a value of the
    wrong type) is rejected with its rows, before it joins the arrival, instead of failing
    the run for every file.
    """
    for target in accepted_schema(columns):
        if target.name not in frame:
            raise _reject(
                name, "ingest_schema", target.name, f"no '{target.name}' column after reading"
            )
        column = frame[target.name]
        if not target.nullable:
            missing = column.isna()
            if missing.any():
                raise _reject(
                    name,
                    "not_null",
                    target.name,
                    f"rows without a {target.name} (an empty cell, or a null in Parquet); "
                    "every row needs one",
                    frame,
                    missing,
                    int(missing.sum()),
                )
        try:
            pa.Array.from_pandas(column, type=target.type)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            wrong = column.map(lambda v, t=target.type: not _converts(v, t))
            raise _reject(
                name,
                "ingest_schema",
                target.name,
                f"values that do not fit the column's type {target.type}: {exc}",
                frame,
                wrong,
                int(wrong.sum()) or None,
            ) from exc


def _converts(value, type_: pa.DataType) -> bool:
    try:
        pa.array([value], type=type_, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        return False
    return True


def _is_nan_text(values: pd.Series) -> pd.Series:
    """Spelled-out missing values ("nan", "NaN", "") count as missing, not as text."""
    if values.dtype.kind == "f":
        return values.isna()
    text = values.astype("string").str.strip().str.lower()
    return text.isin(["nan", "", "na", "null", "none"]).fillna(False).astype(bool)


def stack_with_history(history: pd.DataFrame, new: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """History rows first, then each new file's rows in landing order, tagged by source."""
    parts = [history.assign(**{SOURCE_FILE: HISTORY_SOURCE, SOURCE_ROW: range(len(history))})]
    parts += [frame.assign(**{SOURCE_FILE: name, SOURCE_ROW: frame.index}) for name, frame in new]
    return pd.concat(parts, ignore_index=True)


def unreadable(landed: LandedFile, why: str) -> list[dict]:
    """The failure record of a file that could not be read at all (never its content)."""
    return [CheckFailure(landed.name, "file_readable", None, why).to_dict()]


def read_future(path: Path, columns: ColumnsConfig, cfg: IngestConfig) -> pd.DataFrame:
    """Future covariate values for forecast steps (``forecast.future_path``): a CSV or
    Parquet file, or a folder of them, with the id, timestamp and ``columns.future``
    columns, as rows with the value empty (the shape ``forecast_frame`` takes after the
    history). Bad input raises ``DataRejected`` naming the file, the check and the column."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    files = [p for p in files if p.suffix.lower() in {e.lower() for e in cfg.extensions}]
    wanted = {columns.series_id: SERIES_ID, columns.timestamp: TIMESTAMP}
    wanted.update({c: c for c in [*columns.future, *columns.static]})
    parts = []
    for file in files:
        raw = pd.read_parquet(file) if file.suffix.lower() != ".csv" else pd.read_csv(file)
        missing = [
            c for c in [columns.series_id, columns.timestamp, *columns.future] if c not in raw
        ]
        if missing:
            raise _reject(
                file.name,
                "required_columns",
                missing[0],
                f"missing column(s) {missing}; a future covariate file has the id, the "
                f"timestamp and columns.future {list(columns.future)}",
            )
        frame = raw[[c for c in wanted if c in raw]].rename(columns=wanted)
        frame[SERIES_ID] = frame[SERIES_ID].astype(str)
        frame[TIMESTAMP] = _parse_timestamps(frame[TIMESTAMP], cfg.timezone, file.name, frame)
        for column in columns.future:
            numeric = pd.to_numeric(frame[column], errors="coerce").astype("float64")
            bad = frame[column].notna() & numeric.isna()
            if bad.any():
                raise _reject(
                    file.name,
                    "values_are_numeric",
                    column,
                    f"non-numeric values in '{column}'",
                    frame,
                    bad,
                    int(bad.sum()),
                )
            frame[column] = numeric
        frame[VALUE] = float("nan")
        parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=[SERIES_ID, TIMESTAMP, VALUE, *columns.future])
    return pd.concat(parts, ignore_index=True)
