"""Landing in an object store: the whole chain against a real S3 endpoint on loopback (moto),
credentials only in the environment and never written anywhere."""

from __future__ import annotations

import io
import json

from flows.retrain import retrain
from flows.watch import watch
from seriesflow.ops.events import landing_resource_id
from seriesflow.workspace.files import Workspace, read_json
from seriesflow.workspace.ledger import load_ledger
from tests.conftest import S3_SECRET
from tests.factories import crash_config, zigzag_frame
from tests.flows.checks import assert_consistent

URL = "s3://landing/incoming"


def _csv(frame) -> bytes:
    out = frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def _keys(s3) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket="landing").get("Contents", []))


def test_retrain_and_watch_on_an_s3_landing(prefect_server, s3, tmp_path, capsys):
    base, later = zigzag_frame(), zigzag_frame(n=24, start=120)
    s3.put_object(Bucket="landing", Key="incoming/base.csv", Body=_csv(base))
    s3.put_object(Bucket="landing", Key="incoming/bad.csv", Body=b"series_id,timestamp\nx,1\n")
    s3.put_object(Bucket="landing", Key="incoming/half.csv.part", Body=b"series_id,tim")
    cfg = crash_config(tmp_path / "work", tmp_path / "unused", paths={"landing": URL})
    workspace = Workspace(cfg.paths.workspace_path())

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] == "completed", result
    assert result["new_files"] == ["base.csv"] and result["rejected_files"] == ["bad.csv"]
    # archived and quarantined into the workspace, then deleted from the bucket
    assert _keys(s3) == ["incoming/half.csv.part"]
    (archived,) = workspace.archive.glob("*/base.csv")
    assert archived.read_bytes() == _csv(base)
    (reason,) = workspace.quarantine.glob("*/bad.csv.reason.json")
    assert read_json(reason)["failures"][0]["check"] == "required_columns"
    ledger = load_ledger(workspace.ledger)
    assert dict(zip(ledger["name"], ledger["status"], strict=True)) == {
        "base.csv": "ingested",
        "bad.csv": "rejected",
    }
    assert_consistent(cfg, {"base.csv": base})

    # the watcher on the same bucket: nothing new, then one new object, announced by URL
    assert watch(cfg)["status"] == "nothing-new"
    s3.put_object(Bucket="landing", Key="incoming/later.csv", Body=_csv(later))
    announced = watch(cfg)
    assert (announced["status"], announced["count"], announced["landing"]) == ("announced", 1, URL)
    assert landing_resource_id(cfg.paths.landing_location()) == f"seriesflow.landing.{URL}"
    result = retrain(cfg, return_state=True).result(raise_on_failure=False)
    assert result["status"] == "completed" and result["new_files"] == ["later.csv"], result
    assert_consistent(cfg, {"base.csv": base, "later.csv": later})

    out = capsys.readouterr()
    assert S3_SECRET not in out.out + out.err + json.dumps(result)
    leaked = [
        p for p in workspace.root.rglob("*") if p.is_file() and S3_SECRET.encode() in p.read_bytes()
    ]
    assert not leaked, f"the S3 secret was written to {leaked}"
