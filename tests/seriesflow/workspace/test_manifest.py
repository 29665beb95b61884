"""The manifest's memory figures, and the release of freed memory after each stage."""

from __future__ import annotations

import threading

from seriesflow.workspace.files import RunDir, release_memory
from seriesflow.workspace.manifest import Manifest, peak_rss_mib, rss_mib


def _fragment_a_thread_arena(kept: list) -> None:
    """~400 MB of 4 KB C-heap blocks made on a worker thread (as Prefect runs a task), one
    in 50 kept: the freed rest cannot leave from the heap's top, only by a trim."""
    blocks = [bytes(4000) for _ in range(100_000)]
    kept.extend(blocks[::50])
    del blocks


def test_release_memory_hands_a_worker_threads_freed_heap_back():
    kept: list = []
    worker = threading.Thread(target=_fragment_a_thread_arena, args=(kept,))
    worker.start()
    worker.join()
    before = rss_mib()
    release_memory()
    after = rss_mib()
    assert len(kept) == 2000  # 8 MB still alive
    assert before - after > 200, (before, after)


def test_each_timed_stage_records_its_seconds_peak_and_the_memory_it_left_held(tmp_path):
    manifest = Manifest(RunDir(tmp_path), {})
    kept: list = []
    with manifest.timed("ingest"):
        worker = threading.Thread(target=_fragment_a_thread_arena, args=(kept,))
        worker.start()
        worker.join()
    record = manifest.to_dict()
    assert record["timings_seconds"]["ingest"] > 0
    peak, held = record["peak_rss_mib"]["ingest"], record["rss_mib"]["ingest"]
    assert peak == peak_rss_mib()
    # measured after the release: the ~400 MB the stage freed is not counted as held
    assert abs(held - rss_mib()) < 50, (held, rss_mib())


def _resident_mib(path) -> float:
    """The RSS of this process's maps of the file at ``path`` (/proc/self/smaps)."""
    kib, mine = 0, False
    with open("/proc/self/smaps", encoding="utf-8") as smaps:
        for line in smaps:
            first = line.split()
            if "-" in first[0] and len(first) >= 5:  # a mapping's header line
                mine = len(first) >= 6 and first[5] == str(path)
            elif mine and first[0] == "Rss:":
                kib += int(first[1])
    return kib / 1024


def test_the_pages_read_from_a_mapped_array_leave_the_rss_and_read_the_same_after(tmp_path):
    """``map_array``'s file pages count in the process's RSS once read; ``release_memory``
    (``drop_mapped_pages``) hands them back, and the array reads the same values again
    (from the page cache). A map ``np.load`` opened without ``map_array`` keeps its pages."""
    import numpy as np

    from seriesflow.workspace.files import map_array

    values = np.arange(50 * 2**20 // 8, dtype=np.float64)  # 50 MiB
    np.save(tmp_path / "values.npy", values)
    np.save(tmp_path / "other.npy", values)
    mapped = map_array(tmp_path / "values.npy")
    other = np.load(tmp_path / "other.npy", mmap_mode="r")
    assert float(mapped.sum()) == float(values.sum())  # every page read
    assert float(other.sum()) == float(values.sum())
    assert _resident_mib(tmp_path / "other.npy") > 45
    release_memory()
    assert _resident_mib(tmp_path / "values.npy") < 1
    assert _resident_mib(tmp_path / "other.npy") > 45  # not ours to hand back
    np.testing.assert_array_equal(mapped[::4096], values[::4096])  # read again


def test_a_mapped_array_s_pages_are_handed_back_while_it_stays_open(tmp_path, monkeypatch):
    """Without any call: a daemon thread hands a map's read pages back every
    ``HAND_BACK_SECONDS`` (a pass over a large map in the middle of a stage)."""
    import time

    import numpy as np

    from seriesflow.workspace import files

    monkeypatch.setattr(files, "HAND_BACK_SECONDS", 0.05)
    values = np.arange(50 * 2**20 // 8, dtype=np.float64)  # 50 MiB
    np.save(tmp_path / "values.npy", values)
    path = tmp_path / "values.npy"
    mapped = files.map_array(path)
    assert float(mapped.sum()) == float(values.sum())  # every page read
    deadline = time.monotonic() + 5  # the thread's current sleep (1 s) ends on the old one
    while _resident_mib(path) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _resident_mib(path) <= 1
    assert float(mapped.sum()) == float(values.sum())  # and it reads the same after


def test_a_process_peak_is_its_own_not_that_of_the_process_that_started_it():
    """Linux carries ``ru_maxrss`` across exec: a flow started by a process holding 300 MB
    would report those as its own peak. ``peak_rss_mib`` reads the process's own ``VmHWM``."""
    import subprocess
    import sys

    held = bytearray(300 * 2**20)  # resident: every page written
    held[::4096] = b"x" * len(held[::4096])
    assert peak_rss_mib() > 300
    code = "from seriesflow.workspace.manifest import peak_rss_mib; print(peak_rss_mib())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(child.stdout) < 250, child.stdout
    del held


def test_a_training_batch_hands_back_the_pages_its_random_windows_mapped(tmp_path, monkeypatch):
    """A random window's read maps the 64 KB around it (fault-around): a batch of 256 left
    16 MB of the values' map resident until the thread's next hand-back, and ten batches
    160 MB at 10M rows. ``window_batches`` hands them back after each batch."""
    import numpy as np

    from seriesflow.model.lstm import window_batches
    from seriesflow.model.windows import SeriesArrays, Windows
    from seriesflow.workspace import files
    from tests.factories import identity_scaler

    monkeypatch.setattr(files, "HAND_BACK_SECONDS", 3600.0)  # the thread out of the way
    rows, path = 2_000_000, tmp_path / "values.npy"
    np.save(path, np.random.default_rng(0).random((rows, 4), dtype=np.float32))  # 32 MB
    values = files.map_array(path)
    files.drop_mapped_pages()
    arrays = SeriesArrays(
        series=["a"],
        start=np.array([0]),
        length=np.array([rows]),
        values=values,
        original=np.zeros(rows),
        times=np.arange(rows).astype("datetime64[h]").astype("datetime64[us]"),
        split=np.zeros(rows, dtype=np.int8),
        features=["value", "b", "c", "d"],
    )
    origins = np.arange(10, rows - 2, 7)
    code = np.zeros(len(origins), np.int64)
    windows = Windows(arrays, origins, code, arrays.split[origins], 8, 1)
    batches = window_batches(windows, identity_scaler(windows), 256, True, 0)
    x, y = batches[0]
    assert x.shape == (256, 8, 4) and y.shape == (256, 1)
    assert _resident_mib(path) < 1.0  # 256 random windows would map about 16 MB
    np.testing.assert_array_equal(y[:, 0], values[origins[batches.order[:256]] + 1, 0])
    values[origins[:4096]].sum()  # the same reads outside a batch stay resident until dropped
    assert _resident_mib(path) > 4.0
