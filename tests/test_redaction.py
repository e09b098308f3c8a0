import json
from collections import Counter
from pathlib import Path

import pytest

from blocklearn.learn.redaction import redact
from blocklearn.learn.rule import decide
from blocklearn.resources.models import BlockRef, BlockSpec

DATA = Path(__file__).parent / "data"
CASES = [json.loads(line) for line in (DATA / "secrets.jsonl").read_text().splitlines()]
SECRETS = [c for c in CASES if c["kind"]]
CLEAN = [c for c in CASES if not c["kind"]]
FIELDS = {"markup", "code", "output", "executed"}
# Rows of the 1,000-row NL2Bash slice redaction may change: 1%, the target of issue 14. The full
# corpus changes 3 of 10,624 rows (bench/redaction_fp.py), each a value written as a secret.
FP_BOUND = 10


def test_the_corpus_covers_a_hundred_secrets_of_fifty_kinds_in_every_field() -> None:
    assert len(SECRETS) >= 100 and len({c["kind"] for c in SECRETS}) >= 50
    assert len(CLEAN) >= 200
    assert {c["field"] for c in SECRETS} == FIELDS and {c["field"] for c in CLEAN} == FIELDS
    assert all(c["secret"] in c["text"] for c in SECRETS)


@pytest.mark.parametrize("case", SECRETS, ids=[f"{c['kind']}-{i}" for i, c in enumerate(SECRETS)])
def test_secrets_are_replaced_by_a_typed_placeholder(case: dict) -> None:
    text, found = redact(case["text"])
    assert case["secret"] not in text
    assert f"<REDACTED:{case['kind']}>" in text
    assert found[case["kind"]] >= 1
    assert redact(text) == (text, Counter()), "a second pass must change nothing"


@pytest.mark.parametrize("case", CLEAN, ids=[f"{c['field']}-{i}" for i, c in enumerate(CLEAN)])
def test_ordinary_commands_and_texts_are_left_alone(case: dict) -> None:
    text, found = redact(case["text"])
    assert text == case["text"] and not found


def block_with(case: dict) -> BlockSpec:
    """A Block whose `field` holds the case's text, every other field ordinary."""
    text, field = case["text"], case["field"]
    cells = [
        {"kind": "markup", "contents": text if field == "markup" else "deploy the service"},
        {
            "kind": "code",
            "language": "bash",
            "contents": text if field == "code" else "kubectl get pods",
            "outputs": [text if field == "output" else "web-1 Running"],
        },
    ]
    executed = text if field == "executed" else "kubectl rollout status deploy/web"
    return BlockSpec.model_validate(
        {
            "doc": {"cells": cells},
            "generatedCell": {"kind": "code", "contents": "kubectl get deploy"},
            "executedCell": {"kind": "code", "language": "bash", "contents": executed},
            "exitCode": 0,
        }
    )


@pytest.mark.parametrize(
    "case", SECRETS, ids=[f"{c['field']}-{c['kind']}-{i}" for i, c in enumerate(SECRETS)]
)
def test_no_secret_reaches_the_example_from_any_field(case: dict) -> None:
    decision = decide(block_with(case), BlockRef(name="b", uid="u"))
    assert decision.example is not None
    dumped = decision.example.model_dump_json()
    assert json.dumps(case["secret"])[1:-1] not in dumped and case["secret"] not in decision.message
    if case["field"] == "output":  # outputs are not kept in an Example: nothing to redact
        assert all(not c.outputs for c in [*decision.example.query.cells, *decision.example.answer])
    else:
        assert decision.redactions[case["kind"]] >= 1


def test_nl2bash_requests_and_commands_are_rarely_changed() -> None:
    rows = [json.loads(line) for line in (DATA / "nl2bash-fp-slice.jsonl").read_text().splitlines()]
    assert len(rows) == 1000
    changed = [r["id"] for r in rows if any(redact(r[f])[1] for f in ("doc", "command"))]
    assert len(changed) <= FP_BOUND, changed


def test_redaction_is_idempotent_and_keeps_the_command_readable() -> None:
    once, _ = redact("mysql -u root -pS3cret -h db app && export API_TOKEN=abc123")
    twice, found = redact(once)
    assert twice == once and not found
    assert (
        once
        == "mysql -u root -p<REDACTED:mysql-password> -h db app && export API_TOKEN=<REDACTED:env-secret>"
    )


def test_the_shapes_that_leaked_in_issue_14_are_caught() -> None:
    prose, _ = redact("The token for staging is 8f2a9c1d7e3b, it expires Friday.")
    positional, _ = redact("sshpass -p 'Wint3r!sComing' ssh ops@10.0.0.7 && redis-cli -a r3d1sPw ping")
    assert prose == "The token for staging is <REDACTED:prose-secret>, it expires Friday."
    assert positional == (
        "sshpass -p <REDACTED:sshpass-password> ssh ops@10.0.0.7 && "
        "redis-cli -a <REDACTED:redis-password> ping"
    )
