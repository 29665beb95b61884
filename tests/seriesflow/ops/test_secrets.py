"""Redaction and refusal of credentials in URIs and free text (a table of cases)."""

from __future__ import annotations

import pytest

from seriesflow.ops.secrets import has_credentials, redact_text, redact_url, refuse_credentials

SLACK = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"
DISCORD = "https://discord.com/api/webhooks/123456789012345678/AbCdEf-gHiJkLmNoPqRsTuVwXyZ0123"
TEAMS = "https://contoso.webhook.office.com/webhookb2/1111-2222@3333-4444/IncomingWebhook/abcdef0123456789/5555"

REDACTED = [
    ("https://ops:hunter2@mlflow.internal/x", "https://ops:***@mlflow.internal/x"),
    ("postgresql://svc:pw@db:5432/m", "postgresql://svc:***@db:5432/m"),
    ("http://tok3n@mlflow.internal", "http://***@mlflow.internal"),
    ("https://mlflow.internal/?token=abc123", "https://mlflow.internal/?token=***"),
    ("https://mlflow.internal/?Token=abc123&x=1", "https://mlflow.internal/?Token=***&x=1"),
    ("https://r.example/x?API_KEY=k1&key=k2", "https://r.example/x?API_KEY=***&key=***"),
    (
        "https://r.example/x?access_token=a&Signature=s",
        "https://r.example/x?access_token=***&Signature=***",
    ),
    (
        "https://r.example/x?sig=s&secret=t&password=p",
        "https://r.example/x?sig=***&secret=***&password=***",
    ),
    ("https://r.example/x?apikey=k&auth=a", "https://r.example/x?apikey=***&auth=***"),
    ("s3://bucket/in?X-Amz-Signature=abc&x=1", "s3://bucket/in?X-Amz-Signature=***&x=1"),
    (SLACK, "https://hooks.slack.com/services/***"),
    (DISCORD, "https://discord.com/api/webhooks/***"),
    (TEAMS, "https://contoso.webhook.office.com/webhookb2/***"),
    ("https://hooks.example.com/webhooks/abc/def", "https://hooks.example.com/webhooks/***"),
    (
        "https://alerts.example.com/in/Xk9fP2qLm7Rt8sVw3ZyB1nC4dE6gH0jK/post",
        "https://alerts.example.com/in/***/post",
    ),
]
KEPT = [
    "sqlite:////data/work/mlflow.db",
    "http://127.0.0.1:5000",
    "https://mlflow.internal/api/2.0?experiment=forecasts",
    "s3://bucket/landing/2026-03-01",
    "s3://bucket/services/hooks/landing",  # webhook paths are http(s) URLs only
    # ids are not secrets: a run id, an MLflow run id (hex), a file's sha256
    "http://mlflow:5000/#/experiments/1/runs/9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "s3://bucket/in/" + "ab" * 32 + ".csv",
    "tcp://scheduler:8786",
    "https://reports.example.com/runs/20260301T120000-abc123/02_validation/data_docs/index.html",
]


@pytest.mark.parametrize(("uri", "shown"), REDACTED)
def test_redact_url_masks_every_kind_of_credential(uri, shown):
    assert redact_url(uri) == shown
    assert has_credentials(uri)
    assert redact_text(f"failed: POST {uri} (refused)") == f"failed: POST {shown} (refused)"


@pytest.mark.parametrize("uri", KEPT)
def test_redact_url_keeps_what_holds_no_credential(uri):
    assert redact_url(uri) == uri
    assert redact_text(f"at {uri}.") == f"at {uri}."
    assert not has_credentials(uri)


def test_refusal_names_the_setting_and_the_environment_instead():
    with pytest.raises(ValueError, match="holds credentials") as info:
        refuse_credentials("https://r.example/?token=abc123", "paths.reports_url", "a proxy")
    assert "abc123" not in str(info.value) and "paths.reports_url" in str(info.value)
