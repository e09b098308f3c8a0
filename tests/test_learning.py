from pathlib import Path

import pytest

from blocklearn.devtools.notebooks import load, notebook_blocks
from blocklearn.embed.text import query_text
from blocklearn.learn.rule import LEARN_ANNOTATION, Policy, Reason, decide, example_name, is_excluded
from blocklearn.resources.models import BlockRef, BlockSpec

REF = BlockRef(name="b", uid="u-1")


def spec(**fields: object) -> BlockSpec:
    base: dict[str, object] = {
        "doc": {"cells": [{"kind": "markup", "contents": "list pods in kube-system"}]},
        "generatedCell": {"kind": "code", "language": "bash", "contents": "kubectl get pods"},
        "executedCell": {"kind": "code", "language": "bash", "contents": "kubectl get pods -n kube-system"},
        "exitCode": 0,
    }
    base.update(fields)
    return BlockSpec.model_validate({k: v for k, v in base.items() if v is not None})


def test_a_correction_teaches_one_example_with_the_doc_and_the_executed_cell() -> None:
    decision = decide(spec(), REF)
    assert decision.reason is Reason.LEARNED
    assert decision.example is not None
    assert decision.example.answer[0].contents == "kubectl get pods -n kube-system"
    assert decision.example.query.cells[0].contents == "list pods in kube-system"
    assert decision.example.block_ref == REF


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"executedCell": {"kind": "code", "contents": "  kubectl get pods \n"}}, Reason.UNCHANGED),
        ({"executedCell": None}, Reason.NOT_EXECUTED),
        ({"evalMode": True}, Reason.EVAL_MODE),
        ({"exitCode": 2}, Reason.EXECUTION_FAILED),
        ({"generatedCell": None}, Reason.NO_SUGGESTION),
        ({"executedCell": {"kind": "code", "contents": "   "}}, Reason.EMPTY),
        ({"doc": {"cells": []}}, Reason.NO_CONTEXT),
    ],
)
def test_blocks_that_do_not_teach_say_why(fields: dict[str, object], reason: Reason) -> None:
    decision = decide(spec(**fields), REF)
    assert decision.reason is reason
    assert decision.example is None
    assert decision.message


def test_settings_can_learn_from_unsuggested_cells_and_failures() -> None:
    policy = Policy(learn_without_suggestion=True, learn_from_failures=True)
    assert decide(spec(generatedCell=None), REF, policy).teaches
    assert decide(spec(exitCode=1), REF, policy).teaches
    # eval blocks never teach, whatever the settings
    assert not decide(spec(evalMode=True), REF, policy).teaches


def test_eval_mode_wins_over_every_other_reason() -> None:
    assert decide(spec(evalMode=True, executedCell=None), REF).reason is Reason.EVAL_MODE


def test_an_example_keeps_the_embedded_cells_without_outputs_and_the_blocks_provenance() -> None:
    """Only what is used: the cells the query renders (the last one and the markup just before it),
    no outputs, the executed cell without its outputs; and the Block's provenance as plain fields."""
    notebook = spec(
        doc={
            "cells": [
                {"kind": "markup", "contents": "# Debugging web"},
                {
                    "kind": "code",
                    "language": "bash",
                    "contents": "kubectl get pods",
                    "outputs": ["web-0 Pending"],
                },
                {"kind": "markup", "contents": "It is still pending."},
                {"kind": "markup", "contents": "Why is web-0 pending?"},
            ]
        },
        executedCell={
            "kind": "code",
            "language": "bash",
            "contents": "kubectl describe pod web-0",
            "outputs": ["Events: ..."],
        },
        genTraceId="gen-1",
        execTraceIds=["exec-1", "exec-2"],
        executedAt="2026-03-01T12:00:00+01:00",
    )
    decision = decide(notebook, REF)
    assert decision.example is not None
    assert [c.contents for c in decision.example.query.cells] == [
        "It is still pending.",
        "Why is web-0 pending?",
    ]
    assert decision.example.answer[0].contents == "kubectl describe pod web-0"
    assert decision.example.answer[0].outputs == []
    ref = decision.example.block_ref
    assert (ref.name, ref.uid, ref.gen_trace_id, ref.exec_trace_ids) == (
        "b",
        "u-1",
        "gen-1",
        ["exec-1", "exec-2"],
    )
    assert ref.learned_at == "2026-03-01T11:00:00Z"  # when the person ran it, in UTC
    assert example_name(decision.example).startswith("kubectl-describe-pod-web-0-")


def test_secrets_are_redacted_from_the_example_and_counted() -> None:
    s = spec(
        doc={
            "cells": [
                {
                    "kind": "markup",
                    "contents": "connect with PGPASSWORD=pgs3cret",
                    "outputs": ["token: abcdefabcdefabcdefabcdef0123"],
                }
            ]
        },
        executedCell={"kind": "code", "contents": "mysql -u root -pS3cretR00t app"},
    )
    decision = decide(s, REF)
    assert decision.teaches and decision.example is not None
    dumped = decision.example.model_dump_json()
    assert "S3cretR00t" not in dumped and "pgs3cret" not in dumped and "abcdefabcdef" not in dumped
    assert decision.example.answer[0].contents == "mysql -u root -p<REDACTED:mysql-password> app"
    # The output is not kept at all: only what the Example keeps is redacted, and counted.
    assert decision.redactions == {"mysql-password": 1, "env-secret": 1}
    assert "Redacted 2 secret(s)" in decision.message and "S3cret" not in decision.message


def test_blocks_with_secrets_can_be_skipped_instead() -> None:
    s = spec(executedCell={"kind": "code", "contents": "export GITHUB_TOKEN=abc123def456"})
    decision = decide(s, REF, Policy(secrets="skip"))
    assert decision.reason is Reason.CONTAINS_SECRET and decision.example is None
    assert "env-secret" in decision.message and "abc123def456" not in decision.message


def test_an_excluded_block_never_teaches_and_says_so() -> None:
    decision = decide(spec(), REF, excluded=True)
    assert decision.reason is Reason.EXCLUDED and decision.example is None
    assert LEARN_ANNOTATION in decision.message
    # Exclusion wins over every other reason, and over a policy that widens learning.
    wide = Policy(learn_without_suggestion=True, learn_from_failures=True)
    assert decide(spec(evalMode=True, exitCode=1), REF, wide, excluded=True).reason is Reason.EXCLUDED
    assert decide(spec(), REF, excluded=False).teaches


@pytest.mark.parametrize(
    ("annotations", "excluded"),
    [
        (None, False),
        ({}, False),
        ({"blocklearn.dev/learn": "false"}, True),
        ({"blocklearn.dev/learn": " False "}, True),
        ({"blocklearn.dev/learn": "true"}, False),
        ({"blocklearn.dev/learn": ""}, False),
        ({"learn": "false", "other.dev/learn": "false"}, False),
    ],
)
def test_the_learn_annotation_excludes_only_when_false(
    annotations: dict[str, str] | None, excluded: bool
) -> None:
    assert is_excluded(annotations) is excluded


def test_examples_of_notebook_blocks_embed_exactly_their_blocks_text() -> None:
    """Over notebook-shaped Blocks from tldr-pages: the Example keeps a few cells, and the text the
    controller embeds for it (and the index searches) is the text of the whole Block's context."""
    blocks = notebook_blocks(load(Path(__file__).parent / "data" / "tldr-notebooks.jsonl"), 104)
    kept = total = 0
    for body in blocks:
        spec = BlockSpec.model_validate(body["spec"])
        decision = decide(spec, REF)
        if decision.example is None:
            continue
        assert query_text(decision.example.query.cells) == query_text(spec.doc.cells)
        kept += len(decision.example.query.cells)
        total += len(spec.doc.cells)
    assert total == 16 * kept > 1000  # one cell of sixteen: the request after a code cell
