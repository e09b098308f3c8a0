"""What `blocklearn` prints of text from the cluster: shown, never acted on by the terminal."""

from __future__ import annotations

import logging
import sys
import unicodedata

import pytest

from blocklearn import logs
from blocklearn.client import SearchResponse
from blocklearn.client.terminal import format_table
from blocklearn.printable import printable

HOSTILE = "ls \x1b[31mred\x1b[0m \x07 \u202eevil\u202c \u200bhidden \x9b2J \u2028next \x7f"


def acted_on(text: str, keep: str = "\n") -> list[str]:
    """The characters of `text` a terminal would act on: controls, format, separators."""
    return [c for c in text if c not in keep and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred", "\\x1b[31mred"),  # ANSI colour: ESC starts it
        ("ding\x07", "ding\\x07"),  # BEL
        ("abc\u202edef", "abc\\u202edef"),  # RIGHT-TO-LEFT OVERRIDE reorders what follows
        ("a\u2066b\u2069", "a\\u2066b\\u2069"),  # bidi isolates
        ("zero\u200bwidth", "zero\\u200bwidth"),  # hides text
        ("csi\x9b", "csi\\x9b"),  # the 8-bit CSI
        ("line\u2028sep", "line\\u2028sep"),
        ("lone \ud800", "lone \\ud800"),
        ("plain text, é, 日本, \U0001f600", "plain text, é, 日本, \U0001f600"),  # left as it is
    ],
)
def test_printable_escapes_what_a_terminal_acts_on_and_nothing_else(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_keeps_newlines_when_asked() -> None:
    assert printable("one\ntwo\x1b", keep="\n") == "one\ntwo\\x1b"
    assert printable("one\ntwo") == "one\\ntwo"


def test_the_search_table_shows_hostile_text_escaped() -> None:
    result = SearchResponse.model_validate(
        {
            "results": [
                {
                    "namespace": "default",
                    "name": "evil",
                    "score": 0.5,
                    "query": HOSTILE,  # the rendered text of the context cells
                    "answer": [{"kind": "code", "contents": HOSTILE}],
                    "blockRef": {"name": "evil"},
                }
            ],
            "model": "m\x1b[2J",
            "indexSize": 1,
        }
    )
    table = format_table(result)
    assert not acted_on(table), acted_on(table)
    assert "\\x1b[31mred" in table and "\\u202eevil" in table and "\\x1b[2J" in table


def test_a_text_log_line_stays_one_line_and_shows_hostile_text_escaped() -> None:
    formatter = logs.TextFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "Created Example: name=%s", (HOSTILE,), None)
    line = formatter.format(record)
    assert "\n" not in line and not acted_on(line), line
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "Failed: %s", ("a\nb",), sys.exc_info())
    text = formatter.format(record)
    assert text.startswith("ERROR Failed: a\\nb\nTraceback")  # the message escaped, the traceback intact
    try:
        raise ValueError(f"no such Block: {HOSTILE}")  # an exception quoting text from the cluster
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "Failed", (), sys.exc_info())
    text = formatter.format(record)
    assert not acted_on(text.replace("\n", "")), text  # its lines kept, nothing else acted on
    assert (
        text.splitlines()[0] == "ERROR Failed"
        and text.splitlines()[1] == "Traceback (most recent call last):"
    )
