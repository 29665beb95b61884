"""The landing area on a local folder and on an object store (a real S3 endpoint on loopback)."""

from __future__ import annotations

import hashlib

import pytest

from seriesflow.workspace.files import sha256_file
from seriesflow.workspace.landing import FILE, ClaimLost, Landing
from seriesflow.workspace.ledger import find_new, load_ledger, scan_landing
from tests.conftest import S3_SECRET


def _put(s3, key: str, body: bytes) -> None:
    s3.put_object(Bucket="landing", Key=key, Body=body)


def test_object_store_listing_hashing_fetching_and_moving(s3, tmp_path):
    _put(s3, "in/a.csv", b"series_id,timestamp,value\na,2026-01-01T00:00:00Z,1\n")
    _put(s3, "in/b.csv.part", b"half")  # still being uploaded under a temporary name
    _put(s3, "in/sub/c.csv", b"not at the top level")
    landing = Landing("s3://landing/in/")

    assert landing.remote and landing.exists() and landing.display == "s3://landing/in"
    (entry,) = landing.entries()
    assert (entry.name, entry.kind, entry.size) == ("a.csv", FILE, 51)
    body = s3.get_object(Bucket="landing", Key="in/a.csv")["Body"].read()
    assert landing.sha256("a.csv") == hashlib.sha256(body).hexdigest()
    local = landing.fetch("a.csv", tmp_path / "copy" / "a.csv")
    assert local.read_bytes() == body

    _put(s3, "in/d.csv", b"x")  # a later upload is seen: listings are never cached
    assert sorted(e.name for e in landing.entries()) == ["a.csv", "d.csv"]
    landing.move_out("a.csv", local, tmp_path / "archive" / "a.csv")
    landing.remove("d.csv")
    assert (tmp_path / "archive" / "a.csv").read_bytes() == body and not local.exists()
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="landing")["Contents"])
    assert keys == ["in/b.csv.part", "in/sub/c.csv"]
    assert Landing("s3://landing/emptied").exists()  # a prefix with no objects: still there


def test_object_store_files_settle_over_two_looks_and_are_new_by_content(s3, tmp_path):
    _put(s3, "in/a.csv", b"one")
    state = tmp_path / "looks.json"
    assert scan_landing("s3://landing/in", 30, now=1000.0, state=state) == []
    _put(s3, "in/a.csv", b"one, longer")  # rewritten: size, time and ETag change
    assert scan_landing("s3://landing/in", 30, now=1040.0, state=state) == []
    (found,) = scan_landing("s3://landing/in", 30, now=1071.0, state=state)
    assert found.source == "s3://landing/in/a.csv" and found.bytes == len(b"one, longer")
    assert find_new([found], load_ledger(tmp_path / "none.parquet")) == [found]


def test_unknown_protocol_and_missing_bucket_say_what_to_do(s3):
    with pytest.raises(ValueError, match="gcsfs for gs://"):
        Landing("gs://bucket/in")
    assert Landing("s3://no-such-bucket/in").entries() == []
    assert not Landing("s3://no-such-bucket/in").exists()


def test_errors_never_show_the_secret(s3, caplog):
    caplog.set_level("DEBUG")
    Landing("s3://landing/in").entries()
    assert S3_SECRET not in caplog.text


def test_an_object_is_claimed_by_etag_and_a_rewrite_after_the_claim_is_a_new_arrival(s3, tmp_path):
    _put(s3, "in/latest.csv", b"content A")
    _put(s3, "in/README.txt", b"another tool's")
    landing = Landing("s3://landing/in", ["*.csv"])
    (entry,) = landing.entries()  # README.txt matches no pattern: not even listed
    dest = tmp_path / "claimed" / "latest.csv"

    landing.claim(entry.name, entry.fingerprint, dest)
    _put(s3, "in/latest.csv", b"content B!")  # the producer rewrites the key

    assert dest.read_bytes() == b"content A"
    (again,) = landing.entries()
    assert again.etag != entry.etag and landing.sha256("latest.csv") != sha256_file(dest)
    # a stale listing claims nothing and deletes nothing
    with pytest.raises(ClaimLost):
        landing.claim(entry.name, entry.fingerprint, tmp_path / "claimed" / "stale.csv")
    assert not (tmp_path / "claimed" / "stale.csv").exists()
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="landing")["Contents"])
    assert keys == ["in/README.txt", "in/latest.csv"]


def test_a_claim_across_file_systems_copies_then_takes_the_name_only_if_unchanged(
    tmp_path, monkeypatch
):
    import errno
    import os

    landing_dir = tmp_path / "landing"
    landing_dir.mkdir()
    (landing_dir / "a.csv").write_text("listed\n")
    landing = Landing(landing_dir)
    (entry,) = landing.entries()

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", cross_device)
    dest = landing.claim(entry.name, entry.fingerprint, tmp_path / "claimed" / "a.csv")
    assert dest.read_text() == "listed\n" and not (landing_dir / "a.csv").exists()

    (landing_dir / "b.csv").write_text("listed\n")
    (listed,) = landing.entries()
    (landing_dir / "b.csv").write_text("changed\n")  # rewritten after it was listed
    with pytest.raises(ClaimLost):
        landing.claim(listed.name, listed.fingerprint, tmp_path / "claimed" / "b.csv")
    assert (landing_dir / "b.csv").read_text() == "changed\n"
    assert not (tmp_path / "claimed" / "b.csv").exists()
