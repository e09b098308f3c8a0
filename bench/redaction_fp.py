"""Redaction false positives and cost: how many ordinary NL2Bash requests and commands it changes.

NL2Bash holds no real credentials, so every change is a false positive or a value its author wrote as
a password on purpose (`sshpass -p pass123`); each change is printed with its kind to judge which.

    python -m bench.redaction_fp [--data ../shared/data/nl2bash/learn.jsonl] [--show 40] [--worst]

Prints the rows changed (target <= 1%), the texts changed per kind, and the cost in µs per Block
(a Block's context and executed cell: the request and the command), timed over every row.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import string
import time
from collections import Counter
from pathlib import Path

from blocklearn.learn.redaction import entropy, redact

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nl2bash" / "learn.jsonl"


def changes(rows: list[dict[str, str]]) -> tuple[list[tuple[str, str, str, Counter[str]]], int]:
    """Every (row id, field, text) that redaction changed, with its kinds; and the rows changed."""
    found = []
    changed_rows = set()
    for row in rows:
        for field in ("doc", "command"):
            text, kinds = redact(row[field])
            if text != row[field] or kinds:
                found.append((row["id"], field, text, kinds))
                changed_rows.add(row["id"])
    return found, len(changed_rows)


def cost_us(rows: list[dict[str, str]], repeats: int = 3) -> float:
    """Best of a few passes: CPU µs to redact one Block's request and command (CPU time, since the
    machine is shared: wall time would count other processes' turns)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for row in rows:
            redact(row["doc"])
            redact(row["command"])
        best = min(best, time.process_time() - start)
    return best / len(rows) * 1e6


_RUN = re.compile(r"(?<![A-Za-z0-9+/_.-])([A-Za-z0-9+/_-]{20,}={0,2})(?![A-Za-z0-9+/=_.-])")


def entropy_report(texts: list[str]) -> None:
    """The measurement behind entropy.py's thresholds: what the data's long runs score, and how many
    generated tokens of each length and alphabet the detector catches (seeded)."""
    runs = [m.group(1).rstrip("=") for t in texts for m in _RUN.finditer(t)]
    mixed = [
        r
        for r in runs
        if not entropy._HEX.match(r)
        and all(any(f(c) for c in r) for f in (str.islower, str.isupper, str.isdigit))
    ]
    print(
        f"entropy: {len(runs)} runs of 20+ token characters in the data, {len(mixed)} mix cases and digits:"
    )
    for r in sorted(set(mixed)):
        print(
            f"  {r[:44]:44} H={entropy.shannon(r):.2f} (needs {entropy.threshold(len(r)):.2f})"
            f" switches={entropy.switch_rate(r):.2f} flagged={entropy.looks_generated(r)}"
        )
    rng = random.Random(1)
    alphabets = {
        "base62": lambda n: "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n)),
        "base64url": lambda n: base64.urlsafe_b64encode(rng.randbytes(n)).decode()[:n],
    }
    for name, make in alphabets.items():
        caught = []
        for n in (20, 24, 32, 40, 64):
            tokens = [make(n) for _ in range(2000)]
            caught.append(f"{n}:{sum(map(entropy.looks_generated, tokens)) / len(tokens):.3f}")
        print(f"  generated {name} tokens caught, by length: {' '.join(caught)}")


def worst_cases() -> None:
    """CPU ms to redact one 64 KiB cell (the largest a Block may hold) built to make a scan
    quadratic: a keyword or tool name repeated with no value, an unclosed quote, a cut-off key."""
    size = 64 * 1024
    rng = random.Random(0)
    units = [
        "token=",
        "password: ",
        "the password for the staging cluster ",
        "htpasswd -b ",
        "sshpass ",
        'echo "',
        "curl -u ",
        "-----BEGIN RSA PRIVATE KEY-----",
        '"password": "',
        "http://a:",
        "--password ",
        "export A_TOKEN=",
        "mysql -x ",
        "echo x > .tok",
        "sudo -S <<< ",
    ]
    cells = {repr(u): (u * (size // len(u) + 1))[:size] for u in units}
    cells["random letters"] = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(size))
    print("worst cases, CPU ms per 64 KiB cell:")
    for name, cell in cells.items():
        start = time.process_time()
        redact(cell)
        print(f"  {name:44} {(time.process_time() - start) * 1000:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--show", type=int, default=40, help="changed texts to print")
    parser.add_argument("--worst", action="store_true", help="also time adversarial 64 KiB cells")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    found, changed_rows = changes(rows)
    per_kind: Counter[str] = Counter()
    for _, _, _, kinds in found:
        per_kind.update(kinds)
    print(f"rows: {len(rows)}  texts: {2 * len(rows)}  ({args.data})")
    print(f"rows changed: {changed_rows} ({changed_rows / len(rows):.2%})  texts changed: {len(found)}")
    for kind, count in per_kind.most_common():
        print(f"  {kind:24} {count}")
    by_id = {r["id"]: r for r in rows}
    for row_id, field, text, kinds in found[: args.show]:
        print(f"- {row_id} {field} [{', '.join(sorted(kinds))}]")
        print(f"    before: {by_id[row_id][field]}\n    after:  {text}")
    entropy_report([row[f] for row in rows for f in ("doc", "command")])
    print(f"cost: {cost_us(rows):.1f} µs CPU per Block (request + command), best of 3 passes")
    if args.worst:
        worst_cases()


if __name__ == "__main__":
    main()
