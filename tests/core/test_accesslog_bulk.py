"""Core: the bulk field regex and the vectorised %t parser of pentools.core.accesslog."""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pentools.core.accesslog import LogFormat, field_regex, parse_clf_time, parse_clf_times
from pentools.core.errors import LogFormatError


def _extract(log_format: str | None, line: str) -> dict[str, str | None]:
    result = pc.extract_regex(pa.array([line]), field_regex(log_format))  # RE2 accepts it
    python = re.fullmatch(field_regex(log_format), line)  # and Python agrees
    assert python is not None
    fields = result.to_pylist()[0]
    assert fields == python.groupdict()
    return fields


def test_combined_default_and_named_formats_give_the_same_fields() -> None:
    line = '192.0.2.1 - bob [01/Mar/2026:10:00:00 +0100] "GET /a\\"b HTTP/1.1" 200 5 "r" "u"'
    auto = _extract(None, line)
    named = _extract("combined", line)
    assert auto["client"] == named["client"] == "192.0.2.1"
    assert auto["request"] == named["request"] == 'GET /a\\"b HTTP/1.1'
    assert (auto["status"], auto["size"], auto["referer"], auto["agent"]) == ("200", "5", "r", "u")
    assert named["time"] == "[01/Mar/2026:10:00:00 +0100]"


def test_literal_parentheses_and_unused_directives_are_not_fields() -> None:
    fields = _extract(
        '(%v) %h %t %D "%r" %>s %O',
        '(www) ::1 [01/Mar/2026:10:00:00 +0000] 17 "GET / HTTP/1.1" 404 3',
    )
    assert (fields["client"], fields["status"], fields["size"]) == ("::1", "404", "3")
    assert sorted(k for k in fields if k.startswith("_")) == ["_1", "_4"]


def test_header_names_are_case_insensitive_in_both_parsers() -> None:
    """``%{user-agent}i`` logs the same header as ``%{User-Agent}i`` (HTTP and
    Apache ignore the case): statistics and the join both see it as the agent."""
    log_format = '%h %t "%r" %>s %b "%{referer}i" "%{USER-AGENT}i"'
    line = '192.0.2.1 [01/Mar/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 5 "http://r/" "Moz"'
    fields = _extract(log_format, line)
    assert (fields["referer"], fields["agent"]) == ("http://r/", "Moz")
    parsed = LogFormat(log_format).parse(line)
    assert parsed is not None and parsed.agent == "Moz"


def test_formats_without_client_or_time_are_refused() -> None:
    with pytest.raises(LogFormatError):
        field_regex('%t "%r"')
    with pytest.raises(LogFormatError):
        field_regex('%h "%r"')


def test_vectorised_times_match_the_line_parser() -> None:
    stamps = [
        "[01/Mar/2026:23:30:00 -0500]",
        "29/Feb/2024:00:00:01 +0130",
        "01/Jan/1970:00:00:00 +0000",
    ]
    parsed = parse_clf_times(pd.Series([*stamps, "01/mar/2026:00:00:00 +0000", None], dtype="str"))
    assert list(parsed["unix"][:3]) == [parse_clf_time(s) for s in stamps]
    assert parsed["local"][0] == parse_clf_time(stamps[0]) - 5 * 3600
    assert parsed["unix"][3:].isna().all()
