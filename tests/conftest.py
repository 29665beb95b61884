"""Shared fixtures. One Prefect test server for the whole session (it takes ~12 s to start)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
import seriesflow  # noqa: E402,F401  (quiet, offline defaults before Prefect is imported)


@pytest.fixture(scope="session")
def prefect_server():
    """A real (temporary) Prefect API for flow tests; unit tests don't need it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_api_url(prefect_server) -> str:
    """The test server's API URL, for flow runs started as separate processes."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real S3-compatible endpoint on a loopback port (moto's server, in a thread)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


S3_SECRET = "s3cr3t-Value-never-logged"


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    """An empty S3 with a bucket ``landing``; credentials and endpoint from the environment
    only, as a team's worker gets them. Yields a boto3 client (an upstream writer)."""
    import urllib.request

    import boto3
    import s3fs

    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"))
    for key, value in {
        "AWS_ACCESS_KEY_ID": "seriesflow-test-key",
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()  # fsspec caches instances, and their listings
    client = boto3.client("s3")
    client.create_bucket(Bucket="landing")
    yield client
    s3fs.S3FileSystem.clear_instance_cache()
