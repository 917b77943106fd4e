"""The README's SDK example, run as written against a node started like `make run` does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import LiveNode

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.live


def readme_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- sdk-example -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "the README lost its SDK example"
    return match.group(1)


def test_the_readme_sdk_example_works_as_written(live_nodes: list[LiveNode], tmp_path: Path) -> None:
    node = LiveNode(database_url=f"sqlite+aiosqlite:///{tmp_path / 'lien.db'}", data_dir=tmp_path)
    live_nodes.append(node.start())
    example = readme_example()
    assert 'SERVER = "http://127.0.0.1:8000"' in example
    script = tmp_path / "example.py"
    script.write_text(example.replace("http://127.0.0.1:8000", node.url))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "labo.durand → dr.martin: Kaliémie 6,8 mmol/L chez Mme Lefèvre, rappelez-moi."
    assert re.fullmatch(r"[0-9a-f]{28} read by dr\.martin at \d\d:\d\d:\d\d", lines[1])
    assert re.fullmatch(r"safety number: (\d{5} ){11}\d{5}", lines[2])
