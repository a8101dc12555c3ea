"""The copied fixtures load and match shared/wire's manifest."""

import json

import pytest
from wirekit import WIRE, files, load

PROVIDERS = ["openai", "azure", "anthropic", "gemini", "groq", "mistral", "openrouter", "deepseek"]
MANIFEST = {f["file"]: f for f in json.loads((WIRE / "manifest.json").read_text())["files"]}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_file_loads_and_matches_manifest(provider: str) -> None:
    assert files(provider), f"no fixtures for {provider}"
    for f in files(provider):
        its = load(f)
        meta = MANIFEST[f]["interactions"]
        assert len(its) == len(meta)
        for it, m in zip(its, meta, strict=False):
            assert it.status == m["status"]
            assert it.body, f"{it.id} has an empty body"
            if it.status == 200 and not it.is_sse and "json" in it.headers.get("content-type", ""):
                json.loads(it.body)
