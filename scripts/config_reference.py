"""Print the configuration reference (docs/pipeline.md) from PipelineConfig's Field descriptions.

    python scripts/config_reference.py > /tmp/ref.md   # then paste it over docs/pipeline.md's table

One row per setting: its dotted key, its default (as configs/default.yaml writes it) and the
description the pydantic model carries, so the reference cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seriesflow.config.pipeline import PipelineConfig  # noqa: E402


def default_text(value: object) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    text = json.dumps(value, default=str)
    return "`" + text.replace("|", "\\|") + "`"


def rows(model: type[BaseModel], instance: BaseModel, prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        value = getattr(instance, name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and value is not None:
            doc = (annotation.__doc__ or "").strip().splitlines()
            out.append(f"| **`{key}`** | | {doc[0] if doc else ''} |")
            out.extend(rows(annotation, value, key + "."))
            continue
        description = " ".join((field.description or "").split()).replace("|", "\\|")
        out.append(f"| `{key}` | {default_text(value)} | {description} |")
    return out


def main() -> None:
    print("| setting | default | what it does |")
    print("| --- | --- | --- |")
    print("\n".join(rows(PipelineConfig, PipelineConfig())))


if __name__ == "__main__":
    main()
