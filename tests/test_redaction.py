import json
from pathlib import Path

import pytest

from blocklearn.redaction import redact

CASES = [
    json.loads(line) for line in (Path(__file__).parent / "data" / "secrets.jsonl").read_text().splitlines()
]
SECRETS = [c for c in CASES if c["kind"]]
CLEAN = [c for c in CASES if not c["kind"]]


def test_the_corpus_covers_thirty_shapes() -> None:
    assert len(SECRETS) >= 30
    assert len({c["kind"] for c in SECRETS}) >= 25


@pytest.mark.parametrize("case", SECRETS, ids=[f"{c['kind']}-{i}" for i, c in enumerate(SECRETS)])
def test_secrets_are_replaced_by_a_typed_placeholder(case: dict) -> None:
    text, found = redact(case["text"])
    assert case["secret"] not in text
    assert f"<REDACTED:{case['kind']}>" in text
    assert found[case["kind"]] >= 1


@pytest.mark.parametrize("case", CLEAN, ids=[c["text"][:30] for c in CLEAN])
def test_ordinary_commands_are_left_alone(case: dict) -> None:
    text, found = redact(case["text"])
    assert text == case["text"] and not found


def test_redaction_is_idempotent_and_keeps_the_command_readable() -> None:
    once, _ = redact("mysql -u root -pS3cret -h db app && export API_TOKEN=abc123")
    twice, found = redact(once)
    assert twice == once and not found
    assert (
        once
        == "mysql -u root -p<REDACTED:mysql-password> -h db app && export API_TOKEN=<REDACTED:env-secret>"
    )
