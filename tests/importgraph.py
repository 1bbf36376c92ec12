"""Which torchstages source files a stage script imports, found statically (lazy imports too).

Used to prove that each stage's ``deps`` in dvc.yaml list exactly the code it runs: a file
imported but not listed would give stale results when it changes.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "torchstages"


def module_file(root: Path, module: str) -> Path | None:
    """src/torchstages/a/b.py or src/torchstages/a/b/__init__.py for ``torchstages.a.b``."""
    base = root / "src" / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == PACKAGE
        ):
            found.add(node.module)
            # `from torchstages import paths` imports the submodule torchstages.paths
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def stage_imports(root: Path, script: Path) -> set[str]:
    """Repo-relative paths of every torchstages file ``script`` imports, transitively."""
    seen: set[Path] = set()
    todo = [root / script]
    while todo:
        path = todo.pop()
        for module in _imported_modules(ast.parse(path.read_text())):
            parts = module.split(".")
            # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            for i in range(1, len(parts) + 1):
                found = module_file(root, ".".join(parts[:i]))
                if found is not None and found not in seen:
                    seen.add(found)
                    todo.append(found)
    return {p.relative_to(root).as_posix() for p in seen}


def rewrite_dvc_yaml(root: Path) -> None:
    """Set every stage's code deps in dvc.yaml to what its script imports (data deps are kept)."""
    import re

    text = (root / "dvc.yaml").read_text()
    for match in re.finditer(
        r"cmd: python (stages/\w+\.py)\n(?:    #.*\n)*    deps:\n((?:      - .*\n)+)", text
    ):
        script, block = match.group(1), match.group(2)
        data = [line for line in block.splitlines() if not line.strip().endswith(".py")]
        code = [script, *sorted(stage_imports(root, Path(script)))]
        new_block = "\n".join(data + [f"      - {c}" for c in code]) + "\n"
        text = text.replace(match.group(0), match.group(0).replace(block, new_block))
    (root / "dvc.yaml").write_text(text)


if __name__ == "__main__":
    # `python tests/importgraph.py`: refresh the code deps of every stage in dvc.yaml
    rewrite_dvc_yaml(Path(__file__).resolve().parents[1])
