"""Model resolution and loading (slow: uses the embedded model)."""

from __future__ import annotations

import pytest

from holefill.completion import model as model_mod
from holefill.completion.model import ModelError, load_model, resolve_dtype

pytestmark = pytest.mark.slow


def test_embedded_model_loads_from_the_safetensors_cache(monkeypatch):
    model_mod.embedded_model_dir()  # converts on the very first run
    monkeypatch.setattr(model_mod, "_convert_gguf", lambda *a: pytest.fail("converted again"))
    loaded = load_model()
    info = loaded.info
    assert info.architecture == "LlamaForCausalLM"
    assert info.path.endswith("smollm2-135m-instruct-q4_1")
    assert info.source.endswith(".gguf")
    assert info.device == "cpu"
    assert loaded.tokenizer("def f():")["input_ids"]


def test_missing_local_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(str(tmp_path / "nope"))


def test_hub_id_not_in_local_cache_does_not_download(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HOLEFILL_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(ModelError, match="cannot load model"):
        load_model("some-org/some-model-that-is-not-cached")


def test_unknown_dtype_is_refused():
    with pytest.raises(ModelError, match="unknown dtype"):
        resolve_dtype("int3", "cpu")


def test_local_directory_model_uses_the_same_path(tmp_path):
    """Any local HF directory works: save a tiny Llama and load it through --model DIR."""
    from transformers import LlamaConfig, LlamaForCausalLM

    path, _ = model_mod.embedded_model_dir()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    tiny = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    )
    tiny.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), dtype="float32")
    assert loaded.info.source == str(tmp_path)
    assert loaded.hf_model.config.num_hidden_layers == 1
