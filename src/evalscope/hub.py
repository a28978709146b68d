"""Fetch files of a hub dataset repository into a local cache: shared by ``eval --dataset-hub`` and ``perf``.

A :class:`HubSource` names a dataset repository, a revision and the files wanted from it. They are downloaded
with the hub's own client (``huggingface_hub`` / ``modelscope``, the ``hub`` extra, imported only when a
download is needed) into the client's cache, checked (sha256 against a pinned value, else against the hub's
own LFS etag when it is a sha256), retried (network errors and checksum mismatches, a fresh download each
time), and copied into a target directory through a temporary sibling that is moved into place. A marker file
written last (``.evalscope-hub.json``: repository, revision, the commit served, each file's sha256 and size)
makes a copy complete; :func:`complete` re-checks it, so later runs use no network at all and a cached file
changed on disk is noticed. Offline means ``HF_HUB_OFFLINE``, ``MODELSCOPE_OFFLINE`` or ``EVALSCOPE_OFFLINE``.

Endpoints: ``HF_ENDPOINT`` and ``MODELSCOPE_ENDPOINT`` / ``MODELSCOPE_DOMAIN`` (how the tests point both
clients at a fake hub on loopback). Errors are one line: ``what`` names the benchmark or dataset, ``fix`` the
way around the hub (``--dataset-dir`` for eval, ``--dataset-path`` for perf).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
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

#: ``convert(downloaded, dest, how)``: writes a downloaded file to ``dest`` in another format (HubFile.convert)
Converter = Callable[[Path, Path, str], None]


@dataclass(frozen=True)
class HubFile:
    """One file of a hub dataset repository and where it goes below the target directory."""

    path: str  # in the repository
    dest: str  # relative destination; for an archive, the directory it is unpacked into ("" = the target)
    sha256: str | None = None  # pinned content hash, when known
    unzip: bool = False  # a zip of the original release: unpacked (one top-level folder is stripped)
    #: a converted copy (e.g. parquet rows): name of the converter that writes the original file format
    #: (several files may append to one ``dest``)
    convert: str | None = None


@dataclass(frozen=True)
class HubSource:
    repo: str
    revision: str
    files: tuple[HubFile, ...]


def cache_root() -> Path:
    """``$EVALSCOPE_CACHE``, else ``~/.cache/evalscope``."""
    return Path(os.environ.get("EVALSCOPE_CACHE", Path.home() / ".cache" / "evalscope"))


def offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in OFFLINE_ENV)


def offline_error(what: str, hub: str, src: HubSource, target: Path, fix: str) -> DatasetError:
    """The one line for "offline and not cached": names the dataset id, the cache path and ``fix``."""
    flags = "/".join(k for k in OFFLINE_ENV if os.environ.get(k))
    return DatasetError(
        f"{what}: offline ({flags}) and {hub} dataset {src.repo!r} is not in the cache {target}",
        fix + ", or run once with network access to fill the cache",
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def complete(target: Path, src: HubSource) -> bool:
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
        if not p.is_file() or p.stat().st_size != int(digest["bytes"]) or sha256_file(p) != digest["sha256"]:
            return False
    return True


def download(
    what: str,
    src: HubSource,
    hub: str,
    target: Path,
    fix: str,
    client_cache: Path,
    convert: Converter | None = None,
) -> Path:
    """Download every file of ``src`` from ``hub`` (retried, checked) and install them as ``target``.

    Raises:
        DatasetError: the repository or file does not exist, or the download failed ATTEMPTS times.
        ConfigError: the hub client library is not installed.
    """
    fetch = _hf_fetch if hub == "huggingface" else _ms_fetch
    downloaded: dict[str, Path] = {}
    commit: str | None = None
    for f in src.files:

        def one(force: bool, f: HubFile = f) -> tuple[Path, str | None]:
            path, commit, etag = fetch(src, f, client_cache, force)
            _verify(path, f, etag, src)
            return path, commit

        downloaded[f.path], commit = _with_retries(one, what, hub, src, target, fix)
    _install(target, src, downloaded, commit, convert)
    return target


def _with_retries(
    call: Any, what: str, hub: str, src: HubSource, target: Path, fix: str
) -> tuple[Path, str | None]:
    """``call(force)`` up to ATTEMPTS times; after a failure the file is fetched again, not taken from the
    client's cache (``force``)."""
    last: BaseException | None = None
    for attempt in range(ATTEMPTS):
        try:
            result: tuple[Path, str | None] = call(attempt > 0)
            return result
        except _NotFound as exc:
            raise DatasetError(f"{what}: {exc.message} (cache {target})", fix) from None
        except ConfigError as exc:  # the client library is missing
            raise ConfigError(
                f"{what}: {exc.message}, to download {hub} dataset {src.repo!r} into {target}",
                f"{exc.hint}; or {fix}",
            ) from None
        except Exception as exc:  # noqa: BLE001 - the clients raise many types (HTTP, OS, their own)
            last = exc
            if attempt + 1 < ATTEMPTS:
                time.sleep(RETRY_DELAY_S * 2**attempt)
    raise DatasetError(
        f"{what}: downloading {hub} dataset {src.repo!r} into {target} failed after "
        f"{ATTEMPTS} attempts: {type(last).__name__}: {str(last)[:200]}",
        fix,
    )


class _NotFound(DatasetError):
    """The repository or file does not exist (not retried)."""


class ChecksumError(Exception):
    """A downloaded file does not have the expected sha256 (retried with a fresh download)."""


def _verify(path: Path, f: HubFile, etag: str | None, src: HubSource) -> None:
    digest = sha256_file(path)
    expected = f.sha256 or (etag if etag and _SHA256.match(etag) else None)
    if expected is not None and digest != expected:
        raise ChecksumError(f"{src.repo}/{f.path} has sha256 {digest[:16]}..., expected {expected[:16]}...")


def _install(
    target: Path,
    src: HubSource,
    downloaded: dict[str, Path],
    commit: str | None,
    convert: Converter | None,
) -> None:
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
                if convert is None:
                    raise ValueError(
                        f"{src.repo}/{f.path}: converter {f.convert!r} given but no convert function"
                    )
                dest.parent.mkdir(parents=True, exist_ok=True)
                convert(path, dest, f.convert)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
        files = {
            str(p.relative_to(tmp)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
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


# ---- the two clients ---------------------------------------------------------------------------------------


def _hf_fetch(src: HubSource, f: HubFile, cache: Path, force: bool) -> tuple[Path, str | None, str | None]:
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
    except ImportError:
        raise ConfigError(
            "downloading from huggingface needs huggingface_hub, which is not installed",
            'pip install "evalscope[hub]"',
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
            "pass the files yourself",
        ) from None
    return Path(path), meta.commit_hash, meta.etag


def _ms_fetch(src: HubSource, f: HubFile, cache: Path, force: bool) -> tuple[Path, str | None, str | None]:
    try:
        from modelscope.hub.file_download import dataset_file_download
    except ImportError:
        raise ConfigError(
            "downloading from modelscope needs modelscope, which is not installed",
            'pip install "evalscope[hub]"',
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
                "pass the files yourself",
            ) from None
        raise
    return Path(path), None, None
