"""pyproject.toml's ranges and the hashed locks agree (what `make install` and the image use).

Each lock is read as pip reads it, for Python 3.11 and 3.12 on Linux, macOS and Windows:
every dependency the project declares for that lock is pinned once, inside its range, with
hashes, and the locks give a package the same version wherever it appears.
"""

from __future__ import annotations

import platform
import re
import tomllib
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.lockfile import REPO, entries, locked

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = PYPROJECT["optional-dependencies"]
# each lock and the extras it installs (the Makefile's `lock` target writes them)
LOCKS = {
    "requirements.lock": ("dask", "s3"),
    "requirements-dev.lock": ("dev",),
    "requirements-all.lock": ("dev", "bench", "team"),
    "requirements-gpu.lock": ("dev", "gpu"),
}
PLATFORMS = {  # (sys_platform, platform_system, platform_machine)
    "linux": ("linux", "Linux", "x86_64"),
    "macos": ("darwin", "Darwin", "arm64"),
    "windows": ("win32", "Windows", "AMD64"),
}


def environment(python: str, where: str) -> dict[str, str]:
    sys_platform, system, machine = PLATFORMS[where]
    env = dict(default_environment())
    env.update(
        python_version=python,
        python_full_version=f"{python}.0",
        sys_platform=sys_platform,
        platform_system=system,
        platform_machine=machine,
        os_name="nt" if where == "windows" else "posix",
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    return env


def declared(extras: tuple[str, ...], env: dict[str, str]) -> list[Requirement]:
    """The requirements a lock must satisfy: the runtime ones and its extras', the
    project's own extras (``seriesflow[dask,s3]`` in dev) followed."""
    todo, seen, found = list(extras), set(), list(map(Requirement, PYPROJECT["dependencies"]))
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in EXTRAS[extra]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == "seriesflow":
                todo += sorted(requirement.extras)
            else:
                found.append(requirement)
    return [r for r in found if r.marker is None or r.marker.evaluate(env)]


CASES = [
    (lock, python, where)
    for lock in LOCKS
    for python in ("3.11", "3.12")
    for where in PLATFORMS
    if not (lock == "requirements-gpu.lock" and where != "linux")  # CUDA wheels: Linux only
]


@pytest.mark.parametrize(("lock", "python", "where"), CASES)
def test_every_declared_dependency_is_locked_inside_its_range(lock, python, where):
    env = environment(python, where)
    pins = locked(REPO / lock, env)
    for requirement in declared(LOCKS[lock], env):
        name = canonicalize_name(requirement.name)
        if lock == "requirements-gpu.lock" and name == "tensorflow-cpu":
            continue  # replaced by the full tensorflow (the gpu extra), never both
        assert name in pins, f"{lock}: {requirement} is not locked for Python {python} {where}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock}: {name}=={pins[name]} is outside pyproject.toml's {requirement}"
        )


def test_the_gpu_lock_has_the_full_tensorflow_and_not_the_cpu_one():
    pins = locked(REPO / "requirements-gpu.lock", environment("3.11", "linux"))
    cpu = locked(REPO / "requirements-dev.lock", environment("3.11", "linux"))
    assert "tensorflow-cpu" not in pins and pins["tensorflow"] == cpu["tensorflow-cpu"]
    assert any(name.startswith("nvidia-cudnn") for name in pins)


def test_every_pin_has_hashes_and_the_locks_agree_on_versions():
    versions: dict[tuple[str, str | None], str] = {}
    for lock in LOCKS:
        text = (REPO / lock).read_text()
        # each pin line ends in a continuation: its --hash lines follow
        pins = re.findall(
            r"^[A-Za-z0-9][^\n]*==[^\n]*\\\n\s+--hash=sha256:[0-9a-f]{64}", text, re.M
        )
        assert len(pins) == len(entries(REPO / lock)) > 100, lock
        for name, pinned, marker in entries(REPO / lock):
            assert versions.setdefault((name, marker), pinned) == pinned, (lock, name)


def test_this_environment_is_the_lock():
    """make install put exactly requirements-dev.lock here (requirements-gpu.lock with GPU=1)."""
    lock = "requirements-dev.lock" if installed("tensorflow-cpu") else "requirements-gpu.lock"
    pins = locked(REPO / lock)
    wrong = {n: (v, installed(n)) for n, v in pins.items() if installed(n) != v}
    assert wrong == {}, f"{lock} vs installed here (run make install): {wrong}"
    assert platform.python_version_tuple()[:2] in (("3", "11"), ("3", "12"))


def installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def test_the_makefile_installs_and_writes_the_locks():
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r $(INSTALL_LOCK)" in makefile
    assert "pip install --quiet --no-deps -e ." in makefile
    written = {}  # make lock: each lock and the extras it is compiled with
    for command in re.findall(r"^\t\$\(UV_COMPILE\)(.*)$", makefile.replace("\\\n", " "), re.M):
        written[re.search(r"-o (\S+)", command)[1]] = tuple(re.findall(r"--extra (\w+)", command))
    assert written == LOCKS
