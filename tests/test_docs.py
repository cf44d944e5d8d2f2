"""Every repository path the docs name exists, so a reader who follows one finds it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *ROOT.glob("deploy/**/*.md")]
TOP_LEVEL = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")}
CODE_PATH = re.compile(r"`([A-Za-z0-9_.-]+/[A-Za-z0-9_./-]*)`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def named_paths(doc: Path) -> list[Path]:
    text = doc.read_text()
    paths = [
        ROOT / match
        for match in CODE_PATH.findall(text)
        if match.split("/")[0] in TOP_LEVEL and "..." not in match
    ]
    paths += [
        (doc.parent / link).resolve()
        for link in LINK.findall(text)
        if not re.match(r"[a-z]+://", link)
    ]
    return paths


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_every_named_path_exists(doc: Path) -> None:
    missing = [str(p.relative_to(ROOT)) for p in named_paths(doc) if not p.exists()]
    assert missing == []
