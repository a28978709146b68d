"""``--dataset-hub huggingface|modelscope``: fetch a benchmark's original files from a hub into the cache.

Benchmarks read their original files laid out like ``../shared/datasets`` (``<root>/<data_subdir>/...``). A hub
source names a dataset repository and the files in it that hold exactly those files (plain files, or a zip of
the original release, unpacked), or parquet copies whose rows hold the original fields (written back in the
original format, see :func:`_convert`). They are downloaded with the hub's own client (``huggingface_hub`` /
``modelscope``, the ``hub`` extra, imported only here and only when a download is needed) into the client's
cache below ``<cache>/hub/``, checked (sha256 against a pinned value, else against the hub's own LFS etag when
it is a sha256), retried, and copied into ``<cache>/datasets/<data_subdir>/``. A marker file written last
(``.evalscope-hub.json``: repository, revision, the commit served, each file's sha256) makes a copy complete;
later runs find it and use no network at all. Offline (``HF_HUB_OFFLINE=1``, ``MODELSCOPE_OFFLINE=1`` or
``EVALSCOPE_OFFLINE=1``) with nothing cached is one line naming the dataset id, the cache path and
``--dataset-dir``.

Endpoints: ``HF_ENDPOINT`` and ``MODELSCOPE_ENDPOINT`` / ``MODELSCOPE_DOMAIN`` (how the tests point both
clients at a fake hub on loopback).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from evalscope.errors import ConfigError, DatasetError

MARKER = ".evalscope-hub.json"
#: Attempts per file (network errors and checksum mismatches), with 1 s, 2 s, ... between them.
ATTEMPTS = 3
RETRY_DELAY_S = 1.0
OFFLINE_ENV = ("EVALSCOPE_OFFLINE", "HF_HUB_OFFLINE", "MODELSCOPE_OFFLINE")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class HubFile:
    """One file of a hub dataset repository and where it goes below ``<root>/<data_subdir>/``."""

    path: str  # in the repository
    dest: str  # relative destination; for an archive, the directory it is unpacked into ("" = the subdir)
    sha256: str | None = None  # pinned content hash, when known
    unzip: bool = False  # a zip of the original release: unpacked (one top-level folder is stripped)
    #: a parquet conversion of the original rows: name of the converter that writes the original file format
    #: (several parquet files may append to one ``dest``)
    convert: str | None = None


@dataclass(frozen=True)
class HubSource:
    repo: str
    revision: str
    files: tuple[HubFile, ...]


_MATH500 = (HubFile("test.jsonl", "test.jsonl"),)
_CEVAL = (HubFile("ceval-exam.zip", "", unzip=True),)
_CMMLU = (HubFile("cmmlu_v1_0_1.zip", "", unzip=True),)


def _pq(path: str, dest: str, convert: str) -> HubFile:
    return HubFile(path, dest, convert=convert)


_ARC = tuple(
    _pq(f"{sub}/{split.lower()}-00000-of-00001.parquet", f"{sub}/{sub}-{split}.jsonl", "arc")
    for sub in ("ARC-Easy", "ARC-Challenge")
    for split in ("Test", "Train")
)

#: benchmark -> hub -> source. Repositories that carry the benchmark's original files are used as they are;
#: for GSM8K, ARC, HumanEval and MBPP the Hugging Face copies are parquet conversions whose rows hold the
#: original fields, and they are written back in the original format (``convert``). The other benchmarks have
#: no hub copy in a form the loaders read.
HUB_SOURCES: dict[str, dict[str, HubSource]] = {
    "gsm8k": {
        "huggingface": HubSource(
            "openai/gsm8k",
            "main",
            tuple(_pq(f"main/{s}-00000-of-00001.parquet", f"{s}.jsonl", "jsonl") for s in ("test", "train")),
        ),
    },
    "arc": {"huggingface": HubSource("allenai/ai2_arc", "main", _ARC)},
    "humaneval": {
        "huggingface": HubSource(
            "openai/openai_humaneval",
            "main",
            (_pq("openai_humaneval/test-00000-of-00001.parquet", "HumanEval.jsonl.gz", "jsonl_gz"),),
        ),
    },
    "mbpp": {
        "huggingface": HubSource(
            "google-research-datasets/mbpp",
            "main",
            tuple(
                _pq(f"full/{s}-00000-of-00001.parquet", "mbpp.jsonl", "jsonl")
                for s in ("prompt", "test", "validation", "train")  # together: task ids 1-974
            ),
        ),
    },
    "math_500": {
        "huggingface": HubSource("HuggingFaceH4/MATH-500", "main", _MATH500),
        "modelscope": HubSource("AI-ModelScope/MATH-500", "master", _MATH500),
    },
    "ceval": {
        "huggingface": HubSource("ceval/ceval-exam", "main", _CEVAL),
        "modelscope": HubSource("modelscope/ceval-exam", "master", _CEVAL),
    },
    "cmmlu": {
        "huggingface": HubSource("haonan-li/cmmlu", "main", _CMMLU),
        "modelscope": HubSource("modelscope/cmmlu", "master", _CMMLU),
    },
}


def offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in OFFLINE_ENV)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _complete(target: Path, src: HubSource) -> bool:
    """True when ``target`` holds a finished copy of ``src`` whose files still match their sha256."""
    try:
        marker = orjson.loads((target / MARKER).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    if marker.get("repo") != src.repo or marker.get("revision") != src.revision:
        return False
    files: dict[str, Any] = marker.get("files") or {}
    if not files:
        return False
    for rel, digest in files.items():
        p = target / rel
        if not p.is_file() or p.stat().st_size != int(digest["bytes"]) or _sha256(p) != digest["sha256"]:
            return False
    return True


def ensure_dataset(benchmark: str, data_subdir: str, hub: str, root: Path) -> Path:
    """Make ``root/data_subdir`` a complete copy of ``benchmark``'s files from ``hub``; return that directory.

    Raises:
        DatasetError: no hub source for the benchmark, offline with no cached copy, or the download failed.
        ConfigError: the hub client library is not installed.
    """
    target = root / data_subdir
    sources = HUB_SOURCES.get(benchmark, {})
    src = sources.get(hub)
    fix = (
        f"pass --dataset-dir DIR with the files laid out as DIR/{data_subdir}/... "
        "(like ../shared/datasets, which works as it is)"
    )
    if src is None:
        if target.is_dir():
            return target  # placed there by hand (the cache has the same layout as --dataset-dir)
        other = [h for h in sources if h != hub]
        raise DatasetError(
            f"benchmark {benchmark!r}: evalscope knows no {hub} dataset repository with its original files or a "
            f"parquet copy it can convert back; nothing at {target}",
            fix + (f", or --dataset-hub {other[0]}" if other else ""),
        )
    if _complete(target, src):
        return target
    if target.is_dir() and not (target / MARKER).exists():
        return target  # placed there by hand: used as it is, never overwritten
    if offline():
        raise DatasetError(
            f"benchmark {benchmark!r}: offline ({'/'.join(k for k in OFFLINE_ENV if os.environ.get(k))}) and "
            f"{hub} dataset {src.repo!r} is not in the cache {target}",
            fix + ", or run once with network access to fill the cache",
        )
    fetch = _hf_fetch if hub == "huggingface" else _ms_fetch
    client_cache = root.parent / "hub" / hub
    downloaded: dict[str, Path] = {}
    commit: str | None = None
    for f in src.files:

        def one(force: bool, f: HubFile = f) -> tuple[Path, str | None]:
            path, commit, etag = fetch(src, f, client_cache, force)
            _verify(path, f, etag, src)
            return path, commit

        downloaded[f.path], commit = _with_retries(one, benchmark, hub, src, target, fix)
    _install(target, src, downloaded, commit)
    return target


def _with_retries(
    call: Any, benchmark: str, hub: str, src: HubSource, target: Path, fix: str
) -> tuple[Path, str | None]:
    """``call(force)`` up to ATTEMPTS times; after a failure the file is fetched again, not taken from the
    client's cache (``force``)."""
    last: BaseException | None = None
    for attempt in range(ATTEMPTS):
        try:
            result: tuple[Path, str | None] = call(attempt > 0)
            return result
        except _NotFound as exc:
            raise DatasetError(f"benchmark {benchmark!r}: {exc.message} (cache {target})", fix) from None
        except ConfigError as exc:  # the client library is missing
            raise ConfigError(
                f"benchmark {benchmark!r}: {exc.message}, to download {hub} dataset {src.repo!r} into {target}",
                f"{exc.hint}; or {fix}",
            ) from None
        except Exception as exc:  # noqa: BLE001 - the clients raise many types (HTTP, OS, their own)
            last = exc
            if attempt + 1 < ATTEMPTS:
                time.sleep(RETRY_DELAY_S * 2**attempt)
    raise DatasetError(
        f"benchmark {benchmark!r}: downloading {hub} dataset {src.repo!r} into {target} failed after "
        f"{ATTEMPTS} attempts: {type(last).__name__}: {str(last)[:200]}",
        fix,
    )


class _NotFound(DatasetError):
    """The repository or file does not exist (not retried)."""


class ChecksumError(Exception):
    """A downloaded file does not have the expected sha256 (retried with a fresh download)."""


def _verify(path: Path, f: HubFile, etag: str | None, src: HubSource) -> None:
    digest = _sha256(path)
    expected = f.sha256 or (etag if etag and _SHA256.match(etag) else None)
    if expected is not None and digest != expected:
        raise ChecksumError(f"{src.repo}/{f.path} has sha256 {digest[:16]}..., expected {expected[:16]}...")


def _install(target: Path, src: HubSource, downloaded: dict[str, Path], commit: str | None) -> None:
    """Copy (and unpack) into a temporary sibling, write the marker, then move it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for f in src.files:
            path = downloaded[f.path]
            dest = tmp / f.dest if f.dest else tmp
            if f.unzip:
                _unzip(path, dest)
            elif f.convert is not None:
                dest.parent.mkdir(parents=True, exist_ok=True)
                _convert(path, dest, f.convert)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
        files = {
            str(p.relative_to(tmp)): {"sha256": _sha256(p), "bytes": p.stat().st_size}
            for p in sorted(tmp.rglob("*"))
            if p.is_file()
        }
        marker = {"repo": src.repo, "revision": src.revision, "commit": commit, "files": files}
        (tmp / MARKER).write_bytes(orjson.dumps(marker, option=orjson.OPT_INDENT_2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        names = [n for n in z.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")]
        tops = {n.split("/", 1)[0] for n in names}
        strip = next(iter(tops)) + "/" if len(tops) == 1 and all("/" in n for n in names) else ""
        root = dest.resolve()
        for n in names:
            rel = n[len(strip) :]
            out = (dest / rel).resolve()
            if not out.is_relative_to(root):
                raise DatasetError(f"archive {archive.name}: member {n!r} escapes its directory", "report it")
            out.parent.mkdir(parents=True, exist_ok=True)
            with z.open(n) as r, out.open("wb") as w:
                shutil.copyfileobj(r, w)


# ---- parquet conversions back to the original file formats ---------------------------------------------


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            "this benchmark's hub copy is parquet, which needs pyarrow, which is not installed",
            'pip install "evalscope[hub]", or pass --dataset-dir',
        ) from None
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows


def _arc_row(r: dict[str, Any]) -> dict[str, Any]:
    """HF ``{id, question, choices: {text: [..], label: [..]}, answerKey}`` -> the AI2 release's line."""
    ch = r["choices"]
    choices = [{"text": t, "label": lab} for t, lab in zip(ch["text"], ch["label"], strict=True)]
    return {
        "id": r["id"],
        "question": {"stem": r["question"], "choices": choices},
        "answerKey": r["answerKey"],
    }


def _convert(src: Path, dest: Path, how: str) -> None:
    """Append ``src``'s rows to ``dest`` in the original format (one JSON object per line; gzip for .gz)."""
    import gzip

    rows = _parquet_rows(src)
    if how == "arc":
        rows = [_arc_row(r) for r in rows]
    elif how not in ("jsonl", "jsonl_gz"):
        raise ValueError(f"unknown converter {how!r}")
    import json

    # ASCII-escaped like the original files: a raw U+2028 inside a string would split a line for readers
    # that split on every line boundary
    data = "".join(json.dumps(r) + "\n" for r in rows).encode("ascii")
    if how == "jsonl_gz":
        with gzip.open(dest, "ab") as g:
            g.write(data)
    else:
        with dest.open("ab") as w:
            w.write(data)


# ---- the two clients ---------------------------------------------------------------------------------------


def _hf_fetch(src: HubSource, f: HubFile, cache: Path, force: bool) -> tuple[Path, str | None, str | None]:
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
    except ImportError:
        raise ConfigError(
            "--dataset-hub huggingface needs huggingface_hub, which is not installed",
            'pip install "evalscope[hub]", or pass --dataset-dir',
        ) from None
    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        meta = get_hf_file_metadata(
            hf_hub_url(src.repo, f.path, repo_type="dataset", revision=src.revision, endpoint=endpoint)
        )
        path = hf_hub_download(
            src.repo,
            f.path,
            repo_type="dataset",
            revision=src.revision,
            cache_dir=str(cache),
            endpoint=endpoint,
            force_download=force,
        )
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise _NotFound(
            f"huggingface dataset {src.repo!r} has no file {f.path!r} at {src.revision!r} "
            f"({type(exc).__name__})",
            "pass --dataset-dir with the files",
        ) from None
    return Path(path), meta.commit_hash, meta.etag


def _ms_fetch(src: HubSource, f: HubFile, cache: Path, force: bool) -> tuple[Path, str | None, str | None]:
    try:
        from modelscope.hub.file_download import dataset_file_download
    except ImportError:
        raise ConfigError(
            "--dataset-hub modelscope needs modelscope, which is not installed",
            'pip install "evalscope[hub]", or pass --dataset-dir',
        ) from None
    endpoint = os.environ.get("MODELSCOPE_ENDPOINT") or None
    if endpoint is None and os.environ.get("MODELSCOPE_DOMAIN"):
        domain = os.environ["MODELSCOPE_DOMAIN"]
        endpoint = domain if "://" in domain else f"https://{domain}"
    if force:
        shutil.rmtree(cache / "datasets", ignore_errors=True)  # the client has no force flag here
    try:
        path = dataset_file_download(
            src.repo, f.path, cache_dir=str(cache), revision=src.revision, endpoint=endpoint
        )
    except Exception as exc:
        text = str(exc).lower()
        if "404" in text or "not exist" in text or "not found" in text:
            raise _NotFound(
                f"modelscope dataset {src.repo!r} has no file {f.path!r} at {src.revision!r}",
                "pass --dataset-dir with the files",
            ) from None
        raise
    return Path(path), None, None
