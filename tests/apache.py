"""A private Apache httpd instance on a loopback address, for end-to-end tests.

Its own ServerRoot, PID file and logs under a temporary directory; started
with ``apache2 -f CONF -k start`` and stopped by TERM to the PID in its
PidFile (SPEC §9).  The document root is world-readable because Apache serves
it as ``nobody``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MODULES = Path("/usr/lib/apache2/modules")


class Apache:
    def __init__(
        self,
        apache2: str,
        directory: Path,
        address: str,
        custom_log: str,
        log_format: str = '%h %l %u %t \\"%r\\" %>s %b',
        env: dict[str, str] | None = None,
    ) -> None:
        self.address = address
        self.env = env  # e.g. a TZ for the zone of its %t
        with socket.socket() as probe:
            probe.bind((address, 0))
            self.port = probe.getsockname()[1]
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.docroot = Path(tempfile.mkdtemp(prefix="pentools-httpd-"))
        self.docroot.chmod(0o755)
        (self.docroot / "index.html").write_text("hello\n")
        (self.docroot / "index.html").chmod(0o644)
        self.pidfile = directory / "httpd.pid"
        self.config = directory / "httpd.conf"
        self.config.write_text(
            f"""
ServerRoot "{directory}"
DefaultRuntimeDir "{directory}"
PidFile "{self.pidfile}"
Listen {address}:{self.port}
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule dir_module {MODULES}/mod_dir.so
User nobody
Group nogroup
ServerName {address}
DocumentRoot "{self.docroot}"
DirectoryIndex index.html
ErrorLog "{directory}/error.log"
LogLevel warn
LogFormat "{log_format}" piped
CustomLog "{custom_log}" piped
<Directory "{self.docroot}">
    Require all granted
</Directory>
"""
        )
        self.apache2 = apache2

    def start(self) -> None:
        result = subprocess.run(
            [self.apache2, "-f", str(self.config), "-k", "start"],
            capture_output=True,
            timeout=30,
            env=self.env,
        )
        assert result.returncode == 0, result.stderr + self.errors()
        deadline = time.monotonic() + 15
        while not self._accepts():
            assert time.monotonic() < deadline, self.errors()
            time.sleep(0.05)

    def _accepts(self) -> bool:
        try:
            socket.create_connection((self.address, self.port), timeout=1).close()
        except OSError:
            return False
        return self.pidfile.exists()

    def errors(self) -> bytes:
        path = self.directory / "error.log"
        return path.read_bytes() if path.exists() else b""

    def stop(self) -> None:
        """TERM to the PID in the PidFile, then wait until it is gone."""
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            pid = None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(self.docroot, ignore_errors=True)
