import json
import subprocess
import sys
from pathlib import Path

import pytest

from blocklearn.devtools.evaluation import (
    BM25Retriever,
    IndexRetriever,
    LearnRecord,
    Query,
    evaluate,
    token_similarity,
)
from blocklearn.devtools.ranking import first_hit_rank, summarise

DATA = Path(__file__).parent / "data"


def test_first_hit_rank_compares_commands_modulo_whitespace() -> None:
    ranked = ["ls -l", "find  .  -name x", "du -sh"]
    assert first_hit_rank(ranked, ["find . -name x"]) == 2
    assert first_hit_rank(ranked, ["du -sh", "ls -l"]) == 1
    assert first_hit_rank(ranked, ["pwd"]) is None


def test_summarise_hit_at_k_and_mrr_on_hand_made_ranks() -> None:
    m = summarise([1, 2, 6, None])
    assert m["hit@1"] == 0.25 and m["hit@5"] == 0.5
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 6) / 4)
    with pytest.raises(ValueError):
        summarise([])


def test_token_similarity_gives_partial_credit_to_near_misses() -> None:
    assert token_similarity("find . -name x", "find . -name x") == 1.0
    assert 0 < token_similarity("find . -name x", "find . -name y") < 1
    assert token_similarity("ls", "du") == 0.0


def test_bm25_ranks_the_matching_document_first() -> None:
    bm25 = BM25Retriever()
    bm25.learn(
        ["list files in a directory", "count lines of a file", "compress a directory"],
        ["ls", "wc -l", "tar czf d.tgz d"],
    )
    assert bm25.search("how many lines has this file", 2)[0] == "wc -l"
    assert bm25.search("nothing matches zzz", 3) == []


def test_a_curve_rises_as_the_answers_are_learned() -> None:
    learn = [
        LearnRecord(f"r{i}", doc, cmd)
        for i, (doc, cmd) in enumerate(
            [
                ("list all files", "ls -a"),
                ("show disk usage", "df -h"),
                ("print working directory", "pwd"),
                ("count lines in a file", "wc -l f"),
                ("find python files", "find . -name '*.py'"),
                ("show running processes", "ps aux"),
            ]
        )
    ]
    queries = [
        Query("q1", "list every file including hidden ones", ["ls -a"]),
        Query("q2", "which processes are running", ["ps aux"]),
    ]
    curve = evaluate(IndexRetriever("hashing"), learn, queries, steps=2, progress=False)
    assert [s.examples for s in curve.steps] == [3, 6]
    assert curve.steps[0].hit1 == 0.5  # only the ls answer is learned after the first half
    assert curve.steps[1].hit1 == 1.0


def run_eval(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`blocklearn eval` on the nl2bash slice, as a user runs it."""
    learn, queries = str(DATA / "nl2bash-learn.jsonl"), str(DATA / "nl2bash-queries.jsonl")
    command = [sys.executable, "-m", "blocklearn", "eval", "--learn", learn, "--queries", queries]
    done = subprocess.run([*command, "--out", str(out), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.e2e
def test_blocklearn_eval_writes_a_report_and_a_learning_curve(tmp_path: Path) -> None:
    out = run_eval(tmp_path, "--steps", "3")
    report = json.loads((tmp_path / "report.json").read_text())
    assert [c["retriever"] for c in report["curves"]] == ["hashing (lexical channel alone)", "bm25"]
    for curve in report["curves"]:
        steps = curve["steps"]
        assert [s["examples"] for s in steps] == [100, 200, 300]
        assert steps[-1]["hit5"] > steps[0]["hit5"]  # it learns: more corrections, more answers found
    png = (tmp_path / "learning_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "| hashing (lexical channel alone) |" in (tmp_path / "report.md").read_text()
    assert "3/3" in out.stderr  # progress was shown


@pytest.mark.e2e
def test_e2e_eval_through_the_real_processes_matches_the_in_process_one(tmp_path: Path) -> None:
    """The controller and the index must embed and rank exactly as the in-process path does."""
    reports = {}
    for mode, extra in (("in-process", ["--embedder", "hashing"]), ("e2e", ["--e2e"])):
        run_eval(tmp_path / mode, "--steps", "2", "--hashing-dim", "512", *extra)
        [curve] = json.loads((tmp_path / mode / "report.json").read_text())["curves"]
        reports[mode] = curve
    assert reports["e2e"]["retriever"] == "e2e hashing (lexical channel alone)"
    for a, b in zip(reports["in-process"]["steps"], reports["e2e"]["steps"], strict=True):
        assert (a["examples"], a["hit1"], a["hit5"], a["mrr"]) == (
            b["examples"],
            b["hit1"],
            b["hit5"],
            b["mrr"],
        )


@pytest.mark.e2e
def test_blocklearn_eval_runs_from_anywhere_on_the_bundled_nl2bash(tmp_path: Path) -> None:
    # As the README writes it, from a directory that holds no data: no --learn, no --queries.
    command = [sys.executable, "-m", "blocklearn", "eval", "--embedder", "hashing", "--steps", "2"]
    command += ["--limit", "400", "--query-limit", "100", "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Learned from `the bundled NL2Bash learn.jsonl` (400 examples)" in done.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["examples"] for s in report["curves"][0]["steps"]] == [200, 400]


def test_the_bundled_nl2bash_is_whole_and_licensed() -> None:
    from blocklearn.devtools import evaluation as ev

    assert len(ev.load_learn(ev.DEFAULT_LEARN)) == 10_624  # the README's figures are over all of it
    assert len(ev.load_queries(ev.DEFAULT_QUERIES)) == 991
    assert "MIT License" in (ev.NL2BASH / "LICENSE").read_text()
    assert "github.com/TellinaTool/nl2bash" in (ev.NL2BASH / "README.md").read_text()
