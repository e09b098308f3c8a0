"""Keyword context: a secret word (password, token, api key, ...) next to a value, in code and in prose.

The keyword list is the union of detect-secrets' keyword plugin (DENYLIST in
detect_secrets/plugins/keyword.py, Apache-2.0) and gitleaks' generic-api-key keywords (MIT); its
allowlist of names that are *about* a secret rather than holding one (`secret_name`, `token_file`,
`key_id`, `credentials_url`) is the model for `_NOT_A_VALUE_SUFFIXES`. Written here, not imported:
detect-secrets scans files, reports values without positions and runs about 330 µs a line ad hoc.
"""

from __future__ import annotations

import itertools
import re

from blocklearn.learn.redaction.engine import Rule, rule
from blocklearn.learn.redaction.values import is_a_value


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that, as a part of a name, say the name holds a secret; `key` does so after a qualifier.
_SECRET_PARTS = _words(
    "password passwd passwort pwd pw pass passphrase passcode secret token apikey "
    "credential credentials creds psk contrasena"
)
# Run-together names: PGPASSWORD, authtoken, dbpasswd, clientsecret, rootpw is too short to trust.
_SECRET_ENDINGS = ("password", "passwd", "passphrase", "token", "secret", "apikey", "secretkey")
_KEY_QUALIFIERS = _words(
    "api access auth secret private client account master signing encryption app service"
)
# Parts that, anywhere in a name, make it point at a secret held elsewhere.
_POINTER_PARTS = _words("existing file path name id ref url uri endpoint length size type")
# Names that say where or what a secret is, not what it is (gitleaks' generic-api-key allowlist).
_NOT_A_VALUE_SUFFIXES = _words(
    "file files path dir name names length len size id ids ref type url uri endpoint env var "
    "prompt policy ttl expiry expires expiration count mode min max header field command cmd "
    "helper format regex pattern hint label enabled required reset change manager store source "
    "provider method key-ref keyref stdin fd hash algorithm algo level strength"
)


def _parts(name: str) -> list[str]:
    """`dbPassword` → [db, password]; `AWS_SECRET_ACCESS_KEY` → [aws, secret, access, key]."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [p for p in re.split(r"[\s_.\-\[\]\"']+", spaced.lower()) if p]


def _is_secret_part(part: str) -> bool:
    return part in _SECRET_PARTS or part.endswith(_SECRET_ENDINGS)


def names_a_secret(name: str) -> bool:
    parts = _parts(name)
    # `pwd` alone is the shell's working directory (`alias pwd=...`, `echo pwd: ...`); a name with
    # `existing`, `file`, `id` ... in it points at a secret (`existingSecret`, `secret_name_ref`).
    if not parts or parts == ["pwd"] or parts[-1] in _NOT_A_VALUE_SUFFIXES:
        return False
    if any(p in _POINTER_PARTS for p in parts):
        return False
    if any(_is_secret_part(p) for p in parts):
        return True
    return any(a in _KEY_QUALIFIERS and b == "key" for a, b in itertools.pairwise(parts))


def _named(match: re.Match[str]) -> bool:
    return names_a_secret(match.group("name")) and is_a_value(match.group("secret"))


# In code, `x = y` assigns a variable and `f(y)` calls: a literal secret is quoted, or at least not a
# bare identifier (`password = getpass.getpass()`, `token = tok`); shell and .env write `X=literal`.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z_.]*$")


def _assigned(match: re.Match[str]) -> bool:
    value = match.group("secret")
    if not _named(match) or "(" in value or "[" in value:
        return False
    spaced = match.group("sep").strip() != match.group("sep")
    return not (spaced and value[0] not in "\"'" and _IDENTIFIER.match(value))


# A name, not a secret, after `--secret`/`--token`: `gcloud ... --secret=db-password`, `--secret id=x`.
_RESOURCE_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)+$|^[\w.-]+=")
# Words after a flag in prose ("Using --password via the CLI is insecure").
_PROSE_WORDS = _words("via is was the a an to for from with and or on in of instead option flag")


def _flag(match: re.Match[str]) -> bool:
    """The flag must end with the secret word (`--export-secret-keys KEYID` names a key)."""
    parts = _parts(match.group("name"))
    value = match.group("secret")
    if not parts or not _named(match) or value.lower() in _PROSE_WORDS:
        return False
    last = parts[-1]
    if last in ("password", "passwd", "passphrase", "pass", "pw"):
        return True
    ends_a_pair = len(parts) > 1 and parts[-2] in _KEY_QUALIFIERS and last == "key"
    return (_is_secret_part(last) or ends_a_pair) and not _RESOURCE_NAME.match(value)


# A value: quoted (spaces allowed) or one word, up to a shell or list delimiter.
_VALUE = r"(?P<secret>\"[^\"\n]{1,1024}\"|'[^'\n]{1,1024}'|`[^`\n]{1,1024}`|[^\s\"'`;&|,)\]}]{1,1024})"
_NAME = r"(?P<name>[A-Za-z_][\w.-]{0,80})"

# One of these occurs in every name `names_a_secret` accepts: rules skip texts without any.
_NEEDLES = ("pass", "pw", "token", "secret", "key", "cred", "psk", "contrase")

KEYWORDS: list[Rule] = [
    # JSON: "password": "correct horse battery staple" (a quoted value may hold spaces).
    rule("json-secret", r'"(?P<name>[\w.-]+)"\s*:\s*(?P<secret>"[^"\n]+")', _named, needles=_NEEDLES),
    # --password X, --db-password=X, --auth-token X, --client-secret=X (the flag ends with the keyword).
    rule("flag-secret", rf"(?<![\w-])--(?!no-){_NAME}(?:=|[ \t]+){_VALUE}", _flag, needles=_NEEDLES),
    # export DB_PASSWORD=..., PGPASSWORD=... psql, set API_TOKEN=..., db_pass = ...
    rule(
        "env-secret",
        rf"(?<![\w.-])(?:-D)?{_NAME}(?P<sep>[ \t]*=(?!=)[ \t]*){_VALUE}",
        _assigned,
        needles=_NEEDLES,
    ),
    # JSON/YAML/TOML/Ruby/Go: "password": "...", password: ..., :token => '...', apiKey := "..."
    rule(
        "config-secret",
        rf"(?<![\w-])[\"']?{_NAME}[\"']?[ \t]*(?::=|=>|:)[ \t]*{_VALUE}",
        _named,
        needles=_NEEDLES,
    ),
]

# Prose: "the token for staging is 8f2a9c1d", "password: hunter2x", "log in with password S3cret!".
# Every repetition is bounded: an unbounded scan from each keyword makes a 64 KiB cell of
# `token=token=...` quadratic (4 s measured; bench/redaction_fp.py --worst prints the worst cases).
# A word follows the keyword directly, or after a few words and a verb or colon; the value must look
# made up (letters and digits), since prose is full of "the password is stored in Vault".
_PROSE_KEYWORD = (
    r"(?:password|passwort|passwd|passphrase|passcode|pass[ -]?word|pw|pwd|token|secret|credentials?|creds|"
    r"(?:api|access|secret|private|deploy|license|signing|master|encryption|webhook)[ _-]?key|"
    r"contrase[nñ]a|mot de passe)s?"
)
# Words between the keyword and its verb ("for alerts@ on prod.example.com"): no sentence end inside.
_FILLER = r"[\w'()@-]{1,40}(?:\.[\w'()@-]{1,40}){0,4}"
_LINK = r"(?:\b(?:is|was|are|equals|reads|becomes|est|ist|es)\b|[:=](?=[ \t])|->)"
# "Credentials are root / T00r", "login: app, Pw9x": a user name may stand before the secret.
_USER = r"(?:[\w.@-]{1,64}[ \t]{0,3}(?:/|,|:)[ \t]{0,3})?"
_PROSE_VALUE = (
    r"(?P<secret>(?=[^\s\"'`]{0,200}\d)(?=[^\s\"'`]{0,200}[A-Za-z])[A-Za-z0-9!#%&*+?@^_~][^\s\"'`,;]{4,200}"
    r"[^\s\"'`,;.:!?)])"
)
_FILE_OR_VERSION = re.compile(
    r"(?i)(?:\.(?:txt|log|conf|cfg|json|ya?ml|pem|key|crt|sh|py|gz|tgz|tar|zip|ini|env|csv|xml|html?|md|db|sql"
    r"|jks|p12|pfx)$|^v?\d+(?:\.\d+)+$|^\d+(?:[kmgt]i?b?|s|ms|h|d|bit|bits|chars?|characters|bytes)$|/)"
)


def _prose_value(match: re.Match[str]) -> bool:
    value = match.group("secret")
    if not is_a_value(value) or _FILE_OR_VERSION.search(value) or _RESOURCE_NAME.match(value):
        return False
    if match.group("link") or match.group("colon"):
        return True
    # Right after the word, with no verb or colon (`kubectl get secret web2`), only a strong value.
    return (
        len(value) >= 12
        or bool(re.search(r"[A-Z]", value) and re.search(r"[a-z]", value))
        or not value.isalnum()
    )


PROSE: list[Rule] = [
    rule(
        "prose-secret",
        rf"(?i)\b{_PROSE_KEYWORD}\b"
        rf"(?:(?:[ \t]+{_FILLER}){{0,5}}?[ \t]*(?P<link>{_LINK})|[ \t]*(?P<colon>[:=])|(?=[ \t]))"
        rf"[ \t]*{_USER}[\"'`]?{_PROSE_VALUE}",
        _prose_value,
        needles=("pass", "pw", "token", "secret", "key", "cred", "contrase"),
    ),
]
