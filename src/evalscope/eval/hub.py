"""``--dataset-hub huggingface|modelscope``: fetch a benchmark's original files from a hub into the cache.

Benchmarks read their original files laid out like ``../shared/datasets`` (``<root>/<data_subdir>/...``). A hub
source names a dataset repository and the files in it that hold exactly those files (plain files, or a zip of
the original release, unpacked), or parquet copies whose rows hold the original fields (written back in the
original format, see :func:`_convert`). They are downloaded with the hub's own client (``huggingface_hub`` /
``modelscope``, the ``hub`` extra, imported only when a download is needed) into the client's cache below
``<cache>/hub/``, checked (sha256 against a pinned value, else against the hub's own LFS etag when it is a
sha256), retried, and copied into ``<cache>/datasets/<data_subdir>/``. A marker file written last
(``.evalscope-hub.json``: repository, revision, the commit served, each file's sha256) makes a copy complete;
later runs find it and use no network at all. Offline (``HF_HUB_OFFLINE=1``, ``MODELSCOPE_OFFLINE=1`` or
``EVALSCOPE_OFFLINE=1``) with nothing cached is one line naming the dataset id, the cache path and
``--dataset-dir``.

The download, checks and atomic install are :mod:`evalscope.hub`, shared with ``perf``'s hub datasets.
Endpoints: ``HF_ENDPOINT`` and ``MODELSCOPE_ENDPOINT`` / ``MODELSCOPE_DOMAIN`` (how the tests point both
clients at a fake hub on loopback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalscope.errors import ConfigError, DatasetError
from evalscope.hub import (
    ATTEMPTS,
    MARKER,
    OFFLINE_ENV,
    HubFile,
    HubSource,
    complete,
    download,
    offline,
    offline_error,
)

__all__ = [
    "ATTEMPTS",
    "HUB_SOURCES",
    "MARKER",
    "OFFLINE_ENV",
    "HubFile",
    "HubSource",
    "ensure_dataset",
]


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
    if complete(target, src):
        return target
    if target.is_dir() and not (target / MARKER).exists():
        return target  # placed there by hand: used as it is, never overwritten
    if offline():
        raise offline_error(f"benchmark {benchmark!r}", hub, src, target, fix)
    download(f"benchmark {benchmark!r}", src, hub, target, fix, root.parent / "hub" / hub, _convert)
    return target


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
