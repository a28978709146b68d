"""What ``--model`` names and which backend answers it: shared by ``eval`` and ``perf`` (no front end imported).

``--model`` is one of three things:

* a **served model name** (``gpt-4o``, ``qwen2.5:7b``): sent in requests to ``--api-url``;
* a **local path**: a model directory (``config.json`` + weights) or a ``.gguf`` file;
* a **hub id** (``org/name``, not an existing path): downloaded with the hub's own client (``modelscope`` by
  default, ``huggingface_hub`` with ``--model-hub huggingface``; the ``hub`` extra) into
  ``$EVALSCOPE_CACHE/models/<hub>/<org>__<name>/<revision>``. A marker written last (repository, revision, each
  file's size) makes the copy complete, so a second run sends nothing over the network. Offline
  (``EVALSCOPE_OFFLINE`` / ``HF_HUB_OFFLINE`` / ``MODELSCOPE_OFFLINE``) and not cached is one line naming the id,
  the cache path and ``--model /local/path``.

The **backend** is how the model is run: ``api`` (an OpenAI-compatible endpoint, or the built-in simulator),
``transformers`` (in-process, ``eval`` only) or a managed server (``vllm``, ``llama.cpp``, ``sglang``,
``swift``). :func:`check_backend` is the one validation of the name, :func:`choose_backend` the one rule for the
default. Import cost: the standard library and :mod:`evalscope.hub`; hub clients load only to download.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from evalscope.errors import ConfigError
from evalscope.hub import OFFLINE_ENV, cache_root, offline

#: Every backend name accepted by ``--backend`` (``api``: an endpoint; the others run the model here).
BACKENDS: tuple[str, ...] = ("api", "transformers", "vllm", "llama.cpp", "sglang", "swift")
#: Backends that run weights in this process (the others are a server: ours or managed).
IN_PROCESS_BACKENDS: tuple[str, ...] = ("transformers",)
MODEL_HUBS: tuple[str, ...] = ("modelscope", "huggingface")
MARKER = ".evalscope-model.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_backend(value: str | None) -> str | None:
    """The backend name as given, or a ValueError listing the allowed ones (used by the config validators)."""
    if value is None:
        return None
    name = value.strip().lower()
    aliases = {"llamacpp": "llama.cpp", "llama-cpp": "llama.cpp", "hf": "transformers", "openai": "api"}
    name = aliases.get(name, name)
    if name not in BACKENDS:
        raise ValueError(f"unknown backend; allowed: {', '.join(BACKENDS)}")
    return name


def looks_like_path(model: str) -> bool:
    """Written as a path (absolute, ``./``, ``../``, ``~``) or an existing file / directory."""
    return model.startswith(("/", "./", "../", "~", ".\\")) or os.path.exists(model)


def is_hub_id(model: str) -> bool:
    """``org/name`` that is not a path on this machine."""
    return bool(_HUB_ID.match(model)) and not looks_like_path(model)


def is_local_ref(model: str | None) -> bool:
    """A path or a hub id, i.e. weights rather than a served model name."""
    return model is not None and (looks_like_path(model) or is_hub_id(model))


def default_local_backend(model: str) -> str:
    """The backend for weights when none is given: ``llama.cpp`` for a ``.gguf``, ``vllm`` when it is
    importable, else ``transformers``."""
    if model.lower().endswith(".gguf"):
        return "llama.cpp"
    if importlib.util.find_spec("vllm") is not None:
        return "vllm"
    return "transformers"


def choose_backend(backend: str | None, model: str | None, api_url: str | None, simulator: bool) -> str:
    """The backend a run uses: the one given, else ``api`` for an endpoint / the simulator / a served name,
    else :func:`default_local_backend` for a path or hub id. A contradiction is a ConfigError."""
    if backend is None:
        if api_url is not None or simulator or model is None or not is_local_ref(model):
            return "api"
        return default_local_backend(model)
    if backend == "api":
        return backend
    if api_url is not None or simulator:
        raise ConfigError(
            f"--backend {backend} runs the model here, so --api-url / --simulator make no sense with it",
            "drop --api-url to run the weights locally, or drop --backend to use the endpoint",
        )
    if model is None:
        raise ConfigError(f"--backend {backend} needs --model (a model directory or a hub id)")
    return backend


# ------------------------------------------------------------------------------------------- resolution


def local_identity(backend: str, model: str, model_args: dict[str, Any]) -> tuple[str, str]:
    """(model name for reports, endpoint id for fingerprints and cache keys) of weights run by ``backend``,
    known before anything is loaded or downloaded. The name is ``--model`` as given (reports name their folder
    after a path's last component); the endpoint id holds the absolute path, or the hub id and revision."""
    if looks_like_path(model):
        return model, f"{backend}:{Path(model).expanduser().resolve()}"
    rev = model_args.get("revision")
    return model, f"{backend}:{model}" + (f"@{rev}" if rev else "")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """Where the weights are: ``path`` on disk, the ``name`` reports use, and where they came from."""

    path: Path
    name: str
    source: str  # "local" | "modelscope" | "huggingface"
    revision: str | None = None


def model_cache_dir(repo: str, hub: str, revision: str | None) -> Path:
    """``$EVALSCOPE_CACHE/models/<hub>/<org>__<name>/<revision>``."""
    rev = revision or ("master" if hub == "modelscope" else "main")
    return cache_root() / "models" / hub / repo.replace("/", "__") / re.sub(r"[^\w.-]", "_", rev)


def cached_model(target: Path, repo: str, revision: str | None) -> bool:
    """True when ``target`` holds a finished download of ``repo`` (every file present with its size)."""
    try:
        marker = orjson.loads((target / MARKER).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    if marker.get("repo") != repo or marker.get("revision") != revision:
        return False
    files: dict[str, int] = marker.get("files") or {}
    return bool(files) and all(
        (target / rel).is_file() and (target / rel).stat().st_size == size for rel, size in files.items()
    )


def resolve_model(model: str, hub: str = "modelscope", revision: str | None = None) -> ResolvedModel:
    """A local path as it is (checked), or a hub id from the cache (downloaded on the first run).

    Raises:
        ConfigError: the path does not exist; offline and not cached; the download failed.
    """
    if looks_like_path(model):
        path = Path(model).expanduser()
        if not path.exists():
            raise ConfigError(
                f"--model {model!r}: no such file or directory",
                "pass a model directory or a hub id (org/name)",
            )
        name = path.resolve().name
        return ResolvedModel(path=path.resolve(), name=name, source="local")
    if not is_hub_id(model):
        raise ConfigError(
            f"--model {model!r} is neither a local path nor a hub id (org/name)",
            "pass a model directory, a hub id, or serve the model and pass --api-url",
        )
    if hub not in MODEL_HUBS:
        raise ConfigError(f"--model-hub {hub!r} is unknown", f"allowed: {', '.join(MODEL_HUBS)}")
    target = model_cache_dir(model, hub, revision)
    if cached_model(target, model, revision):
        return ResolvedModel(path=target, name=model, source=hub, revision=revision)
    fix = (
        f"pass --model /local/path (a directory with config.json and the weights), or serve {model} and pass "
        "--api-url"
    )
    if offline():
        flags = "/".join(k for k in OFFLINE_ENV if os.environ.get(k))
        raise ConfigError(
            f"--model {model!r}: offline ({flags}) and {hub} model {model!r} is not in the cache {target}",
            fix + ", or run once with network access to fill the cache",
        )
    try:
        download_model(model, hub, revision, target)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the hub clients raise many types (HTTP, OS, their own)
        raise ConfigError(
            f"--model {model!r}: downloading {hub} model {model!r} into {target} failed: "
            f"{type(exc).__name__}: {str(exc)[:200]}",
            fix,
        ) from None
    return ResolvedModel(path=target, name=model, source=hub, revision=revision)


def download_model(repo: str, hub: str, revision: str | None, target: Path) -> Path:
    """Download ``repo`` into a temporary sibling of ``target``, write the marker, move it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fetch_snapshot(repo, hub, revision, tmp)
        files = {
            str(p.relative_to(tmp)): p.stat().st_size
            for p in sorted(tmp.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(tmp).parts)
        }
        if not files:
            raise ConfigError(f"--model {repo!r}: the {hub} repository has no files")
        marker = {"repo": repo, "hub": hub, "revision": revision, "files": files}
        (tmp / MARKER).write_bytes(orjson.dumps(marker, option=orjson.OPT_INDENT_2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def fetch_snapshot(repo: str, hub: str, revision: str | None, dest: Path) -> None:
    """Every file of model ``repo`` into ``dest`` with the hub's own client (tests replace this function)."""
    kwargs: dict[str, Any] = {"revision": revision, "local_dir": str(dest)}
    if hub == "huggingface":
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise ConfigError(
                "downloading from huggingface needs huggingface_hub, which is not installed",
                'pip install "evalscope[hub]", or pass --model /local/path',
            ) from None
        snapshot_download(repo, endpoint=os.environ.get("HF_ENDPOINT") or None, **kwargs)
        return
    try:
        from modelscope.hub.snapshot_download import snapshot_download as ms_snapshot
    except ImportError:
        raise ConfigError(
            "downloading from modelscope needs modelscope, which is not installed",
            'pip install "evalscope[hub]", or pass --model /local/path',
        ) from None
    ms_snapshot(model_id=repo, **kwargs)


# ------------------------------------------------------------------------------------------- model args

#: ``--model-args`` keys and what they do (``precision`` is the seed's name of ``torch_dtype``).
MODEL_ARGS: dict[str, str] = {
    "precision": "weights dtype: float32, float16, bfloat16 or auto (also torch.float16 ...)",
    "torch_dtype": "same as precision",
    "dtype": "same as precision",
    "device_map": "where the weights go: cpu, cuda, cuda:0, auto (needs accelerate)",
    "revision": "hub revision of a hub id (branch, tag or commit)",
    "trust_remote_code": "run the model repository's own code (off unless given)",
    "attn_implementation": "eager, sdpa ... (transformers' name)",
}
_DTYPES = {
    "fp32": "float32",
    "float": "float32",
    "float32": "float32",
    "fp16": "float16",
    "half": "float16",
    "float16": "float16",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "auto": "auto",
}


def check_model_args(args: dict[str, Any]) -> dict[str, Any]:
    """``--model-args`` checked: known keys only (did-you-mean), one dtype under the name ``dtype``."""
    import difflib

    out: dict[str, Any] = {}
    for key, value in args.items():
        if key not in MODEL_ARGS:
            close = difflib.get_close_matches(key, list(MODEL_ARGS), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(MODEL_ARGS)}"
            raise ValueError(f"unknown key {key!r} ({hint})")
        if key in ("precision", "torch_dtype", "dtype"):
            if value is None:
                continue
            name = str(value).strip().lower().removeprefix("torch.")
            if name not in _DTYPES:
                raise ValueError(f"{key}={value!r} is not a dtype (float32, float16, bfloat16 or auto)")
            if "dtype" in out and out["dtype"] != _DTYPES[name]:
                raise ValueError(f"{key}={value!r} contradicts dtype={out['dtype']!r}")
            out["dtype"] = _DTYPES[name]
            continue
        out[key] = value
    return out
