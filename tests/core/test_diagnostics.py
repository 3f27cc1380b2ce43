"""Diagnostics go through each tool's own logger (``pentools.TOOL``), never print."""

from __future__ import annotations

import ast
import logging

import pytest

from pentools.core.cli import tool_logger
from tests.conftest import REPO_ROOT

#: The tools converted so far (pen and webstats have their own engineers).
LOGGING_TOOLS = ("penlogd", "penlog", "mergelogs", "webresolve", "penctl")


@pytest.mark.parametrize("tool", LOGGING_TOOLS)
def test_no_print_in_the_tool(tool: str) -> None:
    for path in sorted((REPO_ROOT / "pentools" / tool).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                pytest.fail(f"{path.name}:{node.lineno}: print() instead of the tool's logger")


def test_tool_logger_writes_one_named_line_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    log = tool_logger("penlog", level=logging.INFO)
    assert log is logging.getLogger("pentools.penlog") and not log.propagate
    log.debug("not shown at INFO")
    log.info("sent %d", 3)
    assert capsys.readouterr().err == "penlog: sent 3\n"
    tool_logger("penlog")  # called again (a daemon that detaches): one handler, not two
    log.warning("once")
    assert capsys.readouterr().err == "penlog: once\n"
