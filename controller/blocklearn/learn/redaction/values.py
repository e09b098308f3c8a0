"""What counts as a literal secret after a password flag or a secret's name.

A shell expansion (`$PW`, `$(cat pw)`, backticks), a template (`{{ .Values.pw }}`, `<password>`), a path
(`--token-file` aside, `password=/run/secrets/pw`) or a placeholder word (`XXXX`, `YOUR_PASSWORD`,
`changeme`) names where a secret is, not the secret: redacting it would only cost retrieval quality.
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PLACEHOLDERS = _words(
    "true false null none nil yes no required optional prompt stdin env empty changeme example "
    "password passwd pass pswd pwd secret token xxx redacted hidden your_password yourpassword "
    "my_password mypassword your_token yourtoken your_secret str string int bool bytes any optional "
    "dict list float"
)
_PATH = re.compile(r"^(?:[~.]{0,2}/|[A-Za-z]:\\)")


def is_a_value(value: str) -> bool:
    """Whether a value is a literal secret, not a reference, command, path or placeholder."""
    if (
        value[:1] == "`"
        or "$(" in value
        or "`" in value[1:]
        or " | " in value
        or "{{" in value
        or "}}" in value
    ):
        return False
    value = value.strip("\"'")
    if not value or value[0] in "$<{(%@*-:" or value.lower() in _PLACEHOLDERS or _PATH.match(value):
        return False
    if set(value.lower()) <= {"x", "*", ".", "_"} or value.startswith("..."):
        return False
    return not (value.isdigit() and len(value) < 4)


def literal(match: re.Match[str]) -> bool:
    return is_a_value(match.group("secret"))
