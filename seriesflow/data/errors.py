"""Errors that carry enough to act on: the file, the check, the column, example rows."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckFailure:
    """One failed check on one file (or on the merged history)."""

    file: str
    check: str
    column: str | None
    message: str
    unexpected_count: int | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    def describe(self, examples: bool = True) -> str:
        """One line: file, check, column, count, why; ``examples``: and the first example row
        (for the log and the CLI; never for alerts, which leave the machine)."""
        where = f"column '{self.column}'" if self.column else "the table"
        count = f" ({self.unexpected_count} rows)" if self.unexpected_count else ""
        file = shown_name(self.file)
        text = f"{file}: check '{self.check}' failed on {where}{count}: {self.message}"
        if examples and self.examples:
            text += f"; e.g. {json.dumps(self.examples[0], default=str)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "check": self.check,
            "column": self.column,
            "message": self.message,
            "unexpected_count": self.unexpected_count,
            "examples": self.examples,
        }


# Unicode categories that must not reach a log line as they are: controls (a newline forges
# a line), format characters (a right-to-left override hides the real name), lone
# surrogates (undecodable bytes in a file name) and the line/paragraph separators.
_HIDDEN_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")


def hidden_characters(text: str) -> list[str]:
    """The characters of ``text`` a log line or a terminal would not show as themselves."""
    return [c for c in text if unicodedata.category(c) in _HIDDEN_CATEGORIES]


def shown_name(name: str) -> str:
    """A landed file name as logs show it: as is, or ``repr``-escaped (quotes included) when
    it holds a control character, so a name can never forge or hide a log line."""
    return repr(name) if hidden_characters(name) else name


class DataRejected(ValueError):
    """Input data failed a check; nothing accepted so far was changed."""

    def __init__(self, failures: list[CheckFailure], hint: str = "") -> None:
        self.failures = failures
        self.hint = hint
        super().__init__(self._text(examples=True))

    def summary(self) -> str:
        """The message without example rows: what may go to a notification or an event."""
        return self._text(examples=False)

    def _text(self, examples: bool) -> str:
        lines = [f.describe(examples) for f in self.failures]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


def example_rows(frame: Any, mask: Any, limit: int = 3) -> list[dict[str, Any]]:
    """Up to ``limit`` offending rows as dicts, keyed ``row`` by the frame's index.

    Ingest indexes a CSV frame by file line (header = line 1) and a Parquet
    frame by row position, so ``row`` points at the place to look.
    """
    hits = frame[mask].head(limit)
    rows = []
    for index, row in hits.iterrows():
        item: dict[str, Any] = {"row": _plain(index)}
        item.update({str(k): _plain(v) for k, v in row.items()})
        rows.append(item)
    return rows


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar (NaN/inf stay floats; json writes them as NaN/Infinity)."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        try:
            return value.item()
        except (ValueError, AttributeError):
            pass
    return value
