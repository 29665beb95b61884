"""Report: the text and markdown every summary, CLI and artifact shares."""

from __future__ import annotations

from seriesflow.evaluation.tables import metrics_text, records_markdown, status_line


def test_status_line_names_the_status_and_the_reason_when_there_is_one():
    assert status_line({"status": "skipped", "reason": "nothing new"}) == (
        "Status: skipped — nothing new"
    )
    assert status_line({"status": "completed", "reason": None}) == "Status: completed"


def test_metrics_text_has_the_first_rows_columns_and_blank_cells_for_missing_ones():
    text = metrics_text(
        {"model": {"rmse": 2.86513, "mase": 0.4734}, "ets": {"rmse": 2.4361}}
    ).splitlines()
    assert text[0].split() == ["model", "rmse", "mase"]
    assert text[1].split() == ["model", "2.8651", "0.4734"]
    assert text[2].split() == ["ets", "2.4361"] and text[2].endswith(" " * 12)  # no MASE


def test_records_markdown_is_a_table_with_a_header_row():
    table = records_markdown([{"series_id": "a", "rmse": 1.23456}]).splitlines()
    assert table[0] == "| series_id | rmse |" and table[1].startswith("|---")
    assert table[2] == "| a | 1.235 |"
