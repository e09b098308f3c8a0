"""Object names as the API server checks them, with its messages (apimachinery's util/validation).

Custom resources, ServiceAccounts, Events, Leases and ResourceQuotas are named by DNS-1123
subdomains (at most 253 characters); Namespaces by DNS-1123 labels (at most 63). A name on a URL
path may not be `.` or `..` nor contain `/` or `%` (apimachinery's api/validation/path).
"""

from __future__ import annotations

import re
import unicodedata

LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
SUBDOMAIN_FMT = LABEL_FMT + r"(\." + LABEL_FMT + ")*"
LABEL_MAX, SUBDOMAIN_MAX = 63, 253
_LABEL = re.compile(f"^{LABEL_FMT}$")
_SUBDOMAIN = re.compile(f"^{SUBDOMAIN_FMT}$")

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    shown = " or ".join(f"'{e}'" for e in examples)
    return f"{message} (e.g. {shown}, regex used for validation is '{fmt}')"


def _max_len(length: int) -> str:
    return f"must be no more than {length} characters"


def dns1123_subdomain(value: str) -> list[str]:
    """apimachinery's IsDNS1123Subdomain: the problems with `value`, none when it is valid."""
    errors = [_max_len(SUBDOMAIN_MAX)] if len(value.encode(errors="surrogatepass")) > SUBDOMAIN_MAX else []
    if not _SUBDOMAIN.fullmatch(value):
        errors.append(_regex_error(_SUBDOMAIN_MSG, SUBDOMAIN_FMT, "example.com"))
    return errors


def dns1123_label(value: str) -> list[str]:
    """apimachinery's IsDNS1123Label."""
    errors = [_max_len(LABEL_MAX)] if len(value.encode(errors="surrogatepass")) > LABEL_MAX else []
    if not _LABEL.fullmatch(value):
        if _SUBDOMAIN.fullmatch(value):
            errors.append("must not contain dots")
        else:
            errors.append(_regex_error(_LABEL_MSG, LABEL_FMT, "my-name", "123-abc"))
    return errors


QUALIFIED_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = f"({QUALIFIED_FMT})?"
_QUALIFIED = re.compile(QUALIFIED_FMT)
_LABEL_VALUE = re.compile(LABEL_VALUE_FMT)
_QUALIFIED_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character"
)


def qualified_name(value: str) -> list[str]:
    """IsQualifiedName: a label key or an annotation key, `[prefix/]name`."""
    parts = value.split("/")
    if len(parts) > 2:
        example = _regex_error(_QUALIFIED_MSG, QUALIFIED_FMT, "MyName", "my.name", "123-abc")
        prefixed = "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        return [f"a qualified name {example} {prefixed}"]
    errors = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors += [f"prefix part {m}" for m in dns1123_subdomain(prefix)]
    name = parts[-1]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name.encode(errors="surrogatepass")) > LABEL_MAX:
        errors.append(f"name part {_max_len(LABEL_MAX)}")
    if not _QUALIFIED.fullmatch(name):
        errors.append(
            "name part " + _regex_error(_QUALIFIED_MSG, QUALIFIED_FMT, "MyName", "my.name", "123-abc")
        )
    return errors


def label_value(value: str) -> list[str]:
    """IsValidLabelValue."""
    errors = [_max_len(LABEL_MAX)] if len(value.encode(errors="surrogatepass")) > LABEL_MAX else []
    if not _LABEL_VALUE.fullmatch(value):
        errors.append(_regex_error(_LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def path_segment(name: str) -> list[str]:
    """apimachinery's IsValidPathSegmentName: what a name on a URL may not be."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def name_errors(value: str, namespace: bool, prefix: bool = False) -> list[str]:
    """ValidateObjectMeta's name check; `prefix` for a generateName, whose trailing dash is allowed."""
    if prefix and value.endswith("-"):
        value = value[:-1] + "a"  # maskTrailingDash
    return dns1123_label(value) if namespace else dns1123_subdomain(value)


_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v"}


def go_quote(value: str) -> str:
    """Go's %q (strconv.Quote), as the API server prints a value in its messages."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif 0xD800 <= code <= 0xDFFF:
            out.append(r"\ufffd")  # Go holds no lone surrogates: it decoded them as U+FFFD
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code >= 0x80 and not _printable(char):
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _printable(char: str) -> bool:
    # Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
    return unicodedata.category(char)[0] in "LMNPS"
