import signal
import subprocess
import sys
import threading

import pytest

from seriesflow.workspace.lock import WorkspaceBusy, workspace_lock

REPO = __file__.rsplit("/tests/", 1)[0]


def test_a_second_writer_waits_or_gives_up_naming_the_holder(tmp_path):
    said = []
    with workspace_lock(tmp_path, owner="run A") as crashed:
        assert crashed is None
        with (
            pytest.raises(WorkspaceBusy, match="held by run A") as caught,
            workspace_lock(tmp_path, owner="run B", wait=False),
        ):
            pass
        assert "workspace busy" in str(caught.value)

        got = threading.Event()

        def second():
            with workspace_lock(tmp_path, owner="run B", log=said.append, poll_seconds=0.01):
                got.set()

        waiter = threading.Thread(target=second)
        waiter.start()
        waiter.join(0.5)
        assert not got.is_set() and "is busy: run A" in said[0]
    waiter.join(10)
    assert got.is_set()


def test_a_holder_killed_outright_frees_the_lock_and_is_reported(tmp_path):
    code = (
        "import os, signal, sys; from pathlib import Path\n"
        "from seriesflow.workspace.lock import workspace_lock\n"
        "with workspace_lock(Path(sys.argv[1]), owner='doomed run'):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO)
    assert done.returncode == -signal.SIGKILL
    with workspace_lock(tmp_path, owner="next run", wait=False) as crashed:
        assert crashed is not None and "doomed run" in crashed
    with workspace_lock(tmp_path, owner="after that", wait=False) as crashed:
        assert crashed is None  # a normal end leaves no note
