"""``--dataset openqa`` / ``longalpaca`` without ``--dataset-path``: the file upstream EvalScope uses, from the hub.

Upstream's perf downloads these from ModelScope when no path is given (``open_qa.jsonl`` of
``AI-ModelScope/HC3-Chinese``; the ``LongAlpaca-12k`` dataset, whose repository holds ``LongAlpaca-12k.json``).
Here the file is fetched once with the shared downloader (:mod:`evalscope.hub`: retries, sha256 checks, atomic
install) into ``<cache>/datasets/perf/<dataset>/`` and re-checked against its recorded sha256 on every later
run, which then needs no network. Offline with nothing cached, or a failed download, is one line naming the
dataset id, the cache path and ``--dataset-path``.
"""

from __future__ import annotations

from pathlib import Path

from evalscope.hub import HubFile, HubSource, cache_root, complete, download, offline, offline_error

HUB = "modelscope"  # upstream's perf fetches these two from ModelScope only

#: dataset name -> (source, the file in the cache the dataset reads)
PERF_HUB_SOURCES: dict[str, HubSource] = {
    "openqa": HubSource("AI-ModelScope/HC3-Chinese", "master", (HubFile("open_qa.jsonl", "open_qa.jsonl"),)),
    "longalpaca": HubSource(
        "AI-ModelScope/LongAlpaca-12k", "master", (HubFile("LongAlpaca-12k.json", "LongAlpaca-12k.json"),)
    ),
}


def hub_file(dataset: str) -> Path:
    """The dataset's file from the hub, downloaded into the cache on first use; its local path.

    Raises:
        DatasetError: offline with no cached copy, the file does not exist on the hub, or the download failed.
        ConfigError: the ``modelscope`` client is not installed.
    """
    src = PERF_HUB_SOURCES[dataset]
    root = cache_root()
    target = root / "datasets" / "perf" / dataset
    what = f"--dataset {dataset}"
    fix = f"pass --dataset-path FILE (a local copy of {src.files[0].path} from {HUB} dataset {src.repo})"
    if not complete(target, src):
        if offline():
            raise offline_error(what, HUB, src, target, fix)
        download(what, src, HUB, target, fix, root / "hub" / HUB)
    return target / src.files[0].dest
