"""pentools built as a wheel and installed into a fresh virtual environment, as a user would.

A virtual environment and a system install (/usr/local) are both a prefix:
bin/ for the console scripts, share/ for the data files.  The wheel is built
from a copy of the checkout's packaged files, so the checkout stays clean,
and installed with ``pip --python``, so the shared development environment
is never touched (``pip install --prefix`` would uninstall its pentools).
Its dependencies come from the running environment, through a .pth file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

#: What the wheel is built from (pyproject.toml names the rest: README.md).
PACKAGED = ("pyproject.toml", "README.md", "pentools", "man", "deploy")


def console_scripts() -> dict[str, str]:
    """pyproject.toml's console scripts: name to ``module:function``."""
    with open(REPO_ROOT / "pyproject.toml", "rb") as stream:
        return dict(tomllib.load(stream)["project"]["scripts"])


@dataclass(frozen=True)
class Installed:
    """The virtual environment the wheel went into."""

    prefix: Path

    @property
    def bin(self) -> Path:
        return self.prefix / "bin"

    @property
    def share(self) -> Path:
        return self.prefix / "share"

    def env(self, **extra: str) -> dict[str, str]:
        """A plain environment with this prefix's bin/ first on PATH, as after `activate`."""
        return {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.prefix), **extra}


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """Build the wheel with pip (with build isolation: the setuptools pyproject asks
    for) and install it into a new virtual environment."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in PACKAGED:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "wheel", "--no-deps", "-w", str(work / "dist"), str(source)])
    (wheel,) = (work / "dist").glob("pentools-*.whl")
    prefix = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(prefix)])
    python = prefix / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    Path(site.strip(), "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)])
    imported = _run([str(python), "-c", "import pentools; print(pentools.__file__)"])
    assert imported.startswith(str(prefix)), imported  # the wheel's copy, not the checkout's
    yield Installed(prefix)


def _run(argv: list[str]) -> str:
    """Run outside the checkout, so that `python -c` cannot import it from the cwd."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd="/", env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout
