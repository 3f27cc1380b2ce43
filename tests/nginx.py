"""A private nginx instance on a loopback address, for end-to-end tests.

Its own configuration, PID file, error log and temporary paths under a
directory of the test; run with ``daemon off;`` as a child the test's
`processes` fixture stops (TERM to the master, which stops its worker).
The document root is world-readable because the worker runs as ``nobody``
when the tests run as root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import Processes
from tests.pen.support import wait_bound


class Nginx:
    def __init__(
        self, nginx: str, directory: Path, address: str, access_log: str, log_format: str
    ) -> None:
        """`access_log`: the arguments of nginx's access_log directive, e.g.
        ``syslog:server=127.0.0.1:10000,tag=web1 who``; `log_format`: the body
        of ``log_format who ...;`` (nginx variables)."""
        self.nginx = nginx
        self.address = address
        with socket.socket() as probe:
            probe.bind((address, 0))
            self.port = probe.getsockname()[1]
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.docroot = Path(tempfile.mkdtemp(prefix="pentools-nginx-"))
        self.docroot.chmod(0o755)
        (self.docroot / "index.html").write_text("hello\n")
        (self.docroot / "index.html").chmod(0o644)
        self.access_log = access_log
        self.config = directory / "nginx.conf"
        self.error_log = directory / "error.log"
        self.process: subprocess.Popen[bytes] | None = None
        temporary = "\n".join(
            f"  {kind}_temp_path {self.directory}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        self.config.write_text(
            f"""
daemon off;
{user}
worker_processes 1;
pid {self.directory}/nginx.pid;
error_log {self.error_log} warn;
events {{ worker_connections 64; }}
http {{
  log_format who '{log_format}';
  access_log {self.access_log};
{temporary}
  server {{
    listen {self.address}:{self.port};
    root {self.docroot};
    index index.html;
  }}
}}
"""
        )

    def start(self, processes: Processes) -> None:
        """Run it in the foreground; return once it listens."""
        self.process = processes.start(
            [
                self.nginx,
                "-p",
                str(self.directory),
                "-c",
                str(self.config),
                "-e",
                str(self.error_log),
            ],
            stderr=subprocess.PIPE,
        )
        wait_bound(self.address, self.port, self.process)

    def stop(self) -> None:
        """TERM the master (it flushes and stops its worker), then remove the document root."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        shutil.rmtree(self.docroot, ignore_errors=True)
