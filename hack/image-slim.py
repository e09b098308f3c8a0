"""Leaves in the image's virtual environment only what `blocklearn controller` and `blocklearn index`
run. The Dockerfile runs it in the build stage, after `blocklearn model` has built the int8 model and
copied the tokenizer into the model cache (all the semantic embedder loads at run time):

1. Uninstalls every distribution that blocklearn's core requirements do not reach once the build-time
   ones are cut off (BUILD_ONLY), and the installers (pip, setuptools). The weights package, which
   nothing requires, goes with them.
2. Removes the parts of kept distributions that nothing in the image imports or loads (UNUSED).
3. Writes bytecode for the modules the image's processes import, and for no other: the root filesystem
   is read-only at run time, and the rest would be bytes carried for nothing.

    python hack/image-slim.py          (with the image's venv's python; prints what it removed)

tests/test_image.py checks the result: none of these distributions, every production module imports.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import pkgutil
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from packaging.requirements import Requirement

# Required by blocklearn's core dependencies, used only when the model is built (image build time).
BUILD_ONLY = {
    "onnx": "writes the float graph that blocklearn model quantises",
    "safetensors": "reads the weights when the model is built",
    # tokenizers declares it for Tokenizer.from_pretrained, a download blocklearn never makes; it
    # brings hf-xet, httpx, tqdm, fsspec, filelock and click.
    "huggingface-hub": "downloads models from the Hugging Face hub",
}
INSTALLERS = ("pip", "setuptools", "wheel")
# Production modules that import a BUILD_ONLY distribution: only `blocklearn model` imports them.
BUILD_MODULES = {"blocklearn.embed.bert_onnx"}
# Paths under site-packages: (glob, why nothing loads it).
UNUSED = [
    ("kubernetes/aio", "the asyncio copy of the official client; kopf and blocklearn use the other one"),
    (
        "onnxruntime/capi/libonnxruntime.so*",
        "the C API's library for other languages; the Python binding has onnxruntime linked in",
    ),
    ("onnxruntime/quantization", "quantises the model at build time (blocklearn model)"),
    ("onnxruntime/transformers", "model conversion and benchmarking tools"),
    ("onnxruntime/tools", "model conversion tools"),
    ("onnxruntime/datasets", "sample models"),
    ("onnxruntime/backend", "the ONNX backend test API"),
    ("**/tests", "test suites of the installed packages"),
]


def name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def runtime_distributions() -> set[str]:
    """blocklearn and what its core requirements reach, without the BUILD_ONLY ones."""
    cut = {name(d) for d in BUILD_ONLY}
    reached, todo = set(), ["blocklearn"]
    while todo:
        current = todo.pop()
        if current in reached or current in cut:
            continue
        reached.add(current)
        for text in md.distribution(current).requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(name(requirement.name))
    return reached


def size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())


def uninstall(site: Path) -> None:
    keep = runtime_distributions()
    installed = {name(d.metadata["Name"]): d for d in md.distributions()}
    extra = sorted(set(installed) - keep - {name(i) for i in INSTALLERS})
    for dist in extra:
        files = [Path(str(installed[dist].locate_file(f))) for f in installed[dist].files or []]
        mb = sum(p.stat().st_size for p in files if p.is_file()) / 1e6
        print(
            f"image-slim: uninstall {dist} ({mb:.1f} MB): {BUILD_ONLY.get(dist, 'not required at run time')}"
        )
    installers = [i for i in INSTALLERS if name(i) in installed]
    # pip removes itself last: it is the one doing the removing.
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", *extra, *installers], check=True
    )


def remove_unused(site: Path) -> None:
    for pattern, why in UNUSED:
        for path in sorted(site.glob(pattern)):
            if not path.exists():
                continue  # inside a tree removed just before
            print(f"image-slim: remove {path.relative_to(site)} ({size(path) / 1e6:.1f} MB): {why}")
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def compile_imported(site: Path) -> None:
    """Import what the processes import, writing bytecode on the way (the build stage may)."""
    sys.dont_write_bytecode = False
    import blocklearn
    from blocklearn.embed.semantic import SemanticEmbedder
    from blocklearn.settings import Settings

    for module in pkgutil.walk_packages(blocklearn.__path__, "blocklearn."):
        if not module.name.endswith("__main__") and module.name not in BUILD_MODULES:
            importlib.import_module(module.name)
    # As the processes make it (from the image's model cache): loads onnxruntime and tokenizers fully.
    SemanticEmbedder.from_settings(Settings()).embed_sync(["list the pods"])
    compiled = sum(p.stat().st_size for p in site.rglob("*.pyc"))
    print(f"image-slim: bytecode for {len(sys.modules)} imported modules ({compiled / 1e6:.1f} MB)")


def main() -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    before = size(site)
    for cache in site.rglob("__pycache__"):  # pip's, if it compiled: only what is imported comes back
        shutil.rmtree(cache, ignore_errors=True)
    uninstall(site)
    remove_unused(site)
    compile_imported(site)
    print(f"image-slim: site-packages {before / 1e6:.0f} MB -> {size(site) / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
