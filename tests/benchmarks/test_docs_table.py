"""benchmarks/docs_table.py: a benchmark rewrites its own block of docs/benchmarks.md only."""

from __future__ import annotations

import pytest

from benchmarks.docs_table import write_block

PAGE = """# Benchmarks

Intro prose stays.

<!-- benchmark:pipeline -->
old pipeline table
<!-- /benchmark:pipeline -->

Between the blocks.

<!-- benchmark:scale -->
| series | s |
| 10 | 94 |
<!-- /benchmark:scale -->

Closing prose.
"""


def test_write_block_replaces_only_its_block(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE, encoding="utf-8")

    write_block("pipeline", "_Measured on 2026-12-04._\n\n| stage | s |\n| ingest | 1.9 |\n", page)

    text = page.read_text(encoding="utf-8")
    assert "old pipeline table" not in text
    assert (
        "<!-- benchmark:pipeline -->\n_Measured on 2026-12-04._\n\n"
        "| stage | s |\n| ingest | 1.9 |\n<!-- /benchmark:pipeline -->"
    ) in text
    # everything outside the block is byte for byte as it was
    before, after = PAGE.split("old pipeline table\n")
    assert text.startswith(before) and text.endswith(after)
    assert "| 10 | 94 |" in text and text.count("<!-- benchmark:") == 2
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file was left behind"


def test_write_block_adds_a_missing_block_at_the_end(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE, encoding="utf-8")

    write_block("warm_start", "| start | s |\n| warm | 9.6 |", page)

    text = page.read_text(encoding="utf-8")
    assert text.startswith(PAGE.rstrip("\n"))
    assert text.endswith(
        "\n\n<!-- benchmark:warm_start -->\n| start | s |\n| warm | 9.6 |\n"
        "<!-- /benchmark:warm_start -->\n"
    )
    # writing again replaces it instead of adding a second one
    write_block("warm_start", "| start | s |\n| warm | 8.0 |", page)
    again = page.read_text(encoding="utf-8")
    assert again.count("<!-- benchmark:warm_start -->") == 1 and "| warm | 8.0 |" in again
    assert "9.6" not in again


def test_write_block_creates_the_page_and_refuses_odd_names(tmp_path):
    page = tmp_path / "docs" / "benchmarks.md"
    write_block("scale", "x", page)
    expected = "<!-- benchmark:scale -->\nx\n<!-- /benchmark:scale -->\n"
    assert page.read_text(encoding="utf-8") == expected
    with pytest.raises(ValueError, match="benchmark block name"):
        write_block("a -->", "x", page)
