"""How log values are shown: as Unicode, and escaped for HTML.

Every value of a log is attacker-controlled; `esc` is the one way onto a page.
"""

from __future__ import annotations

import html


def display(value: object) -> str:
    """A log value as Unicode: the bytes read as UTF-8 where they are, else kept as Latin-1."""
    text = str(value)
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def esc(value: object) -> str:
    """Text for HTML (content or a quoted attribute), from any value."""
    return html.escape(display(value), quote=True)
