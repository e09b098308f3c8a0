"""Secrets never become examples: credentials in cells are replaced by typed placeholders.

Executed commands often carry credentials (`mysql -pS3cret`, `export GITHUB_TOKEN=...`,
`kubectl create secret ... --from-literal=password=...`). Before an Example is written, every shape
below is replaced by `<REDACTED:kind>`, so the secret is in no Example, embedding, index, search
answer, log, event or metric (only counts per kind are). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections import Counter

# (kind, pattern, group holding the secret). Order matters: specific shapes before generic ones.
_RULES: list[tuple[str, str, int]] = [
    ("private-key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----", 0),
    ("aws-access-key", r"\b((?:AKIA|ASIA)[0-9A-Z]{16})\b", 1),
    ("aws-secret-key", r"(?i)(aws_secret_access_key\s*[=:]\s*[\"']?)([A-Za-z0-9/+=]{40})", 2),
    ("gcp-private-key-id", r"(\"private_key_id\"\s*:\s*\")([0-9a-f]{40})(\")", 2),
    ("google-api-key", r"\b(AIza[0-9A-Za-z_-]{35})\b", 1),
    ("azure-storage-key", r"(AccountKey=)([A-Za-z0-9+/=]{40,})", 2),
    ("azure-sas-signature", r"([?&]sig=)([A-Za-z0-9%+/=]{20,})", 2),
    ("github-token", r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b", 1),
    ("gitlab-token", r"\b(glpat-[A-Za-z0-9_-]{20,})", 1),
    ("slack-token", r"\b(xox[abposr]-[A-Za-z0-9-]{10,})", 1),
    ("slack-webhook", r"(https://hooks\.slack\.com/services/)([A-Za-z0-9/]+)", 2),
    ("stripe-key", r"\b((?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,})\b", 1),
    ("anthropic-key", r"\b(sk-ant-[A-Za-z0-9_-]{20,})", 1),
    ("openai-key", r"\b(sk-(?:proj-)?[A-Za-z0-9_-]{20,})", 1),
    ("npm-token", r"\b(npm_[A-Za-z0-9]{36})\b", 1),
    ("sendgrid-key", r"\b(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})\b", 1),
    ("twilio-key", r"\b(SK[0-9a-fA-F]{32})\b", 1),
    ("vault-token", r"\b(hvs\.[A-Za-z0-9_-]{24,})", 1),
    ("jwt", r"\b(eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})", 1),
    ("bearer-token", r"(?i)(authorization:\s*bearer\s+)([^\s'\"]+)", 2),
    ("basic-auth", r"(?i)(authorization:\s*basic\s+)([A-Za-z0-9+/=]+)", 2),
    ("basic-auth", r"(\bcurl\b[^\n]*?\s(?:-u|--user)\s+[\"']?[^\s:\"']+:)([^\s\"']+)", 2),
    ("url-password", r"([a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:)([^\s@/]+)(@)", 2),
    ("k8s-secret-literal", r"(--from-literal=[^=\s]+=)([\"']?)([^\s\"']+)", 3),
    ("kubeconfig-token", r"(?m)^(\s*token:\s*)(\S+)", 2),
    ("kubeconfig-key", r"(?m)^(\s*client-key-data:\s*)(\S+)", 2),
    ("mysql-password", r"(\b(?:mysql|mysqldump|mariadb|mysqladmin)\b[^\n]*?\s-p)([^\s-][^\s]*)", 2),
    ("docker-password", r"(\bdocker\s+login\b[^\n]*?\s-p\s+)(\S+)", 2),
    ("azure-password", r"(\baz\s+login\b[^\n]*?\s(?:-p|--password)\s+)(\S+)", 2),
    (
        "flag-secret",
        r"(--(?:password|passwd|pass|token|secret|api-key|apikey|client-secret|access-token|auth-token)"
        r"(?:=|\s+))([\"']?)([^\s\"']+)",
        3,
    ),
    (
        "env-secret",
        r"(?i)\b((?:export\s+|set\s+)?[A-Z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|PWD|API_KEY|APIKEY|ACCESS_KEY|"
        r"PRIVATE_KEY)[A-Z0-9_]*\s*=\s*)([\"']?)([^\s\"']+)",
        3,
    ),
    (
        "json-secret",
        r"(?i)(\"(?:password|passwd|secret|token|api_key|apikey|client_secret|access_token)\"\s*:\s*\")([^\"]+)(\")",
        2,
    ),
]
_COMPILED = [(kind, re.compile(pattern), group) for kind, pattern, group in _RULES]
PLACEHOLDER = "<REDACTED:{kind}>"


_PLACED = re.compile(r"<REDACTED:[a-z0-9-]+>")


def redact(text: str) -> tuple[str, Counter[str]]:
    """Return the text with every secret replaced, and how many of each kind were found."""
    found: Counter[str] = Counter()
    for kind, pattern, group in _COMPILED:
        # A later, more generic rule must not match inside an earlier rule's placeholder.
        placed = [m.span() for m in _PLACED.finditer(text)]

        def replace(
            match: re.Match[str], kind: str = kind, group: int = group, placed: list[tuple[int, int]] = placed
        ) -> str:
            start, end = match.span(group)
            if start == end or any(start < p_end and p_start < end for p_start, p_end in placed):
                return match.group(0)
            found[kind] += 1
            offset, whole = match.start(0), match.group(0)
            return whole[: start - offset] + PLACEHOLDER.format(kind=kind) + whole[end - offset :]

        text = pattern.sub(replace, text)
    return text, found
