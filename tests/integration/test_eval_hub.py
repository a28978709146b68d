"""``--dataset-hub`` (and perf's openqa / longalpaca): real downloads with huggingface_hub / modelscope from a fake hub on loopback (issue 11 item 8).

The fake hub implements only what the two clients call for one dataset file: Hugging Face's
``HEAD|GET /datasets/<repo>/resolve/<revision>/<path>`` (with ``X-Repo-Commit``, ``ETag``, ``Content-Length``)
and ModelScope's ``HEAD|GET /api/v1/datasets/<repo>/repo?Revision=..&FilePath=..``. The served files are the
real benchmark files from ../shared/datasets, so the benchmark loaders read what was downloaded.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from evalscope import hub as shared_hub
from evalscope.errors import DatasetError
from evalscope.eval import hub
from evalscope.eval.config import build_config
from evalscope.eval.runner import EvalRunner

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"  # as tests/conftest.py


@pytest.fixture(autouse=True)
def _needs_data(shared_datasets: Path) -> None:
    """Skip (with the reason) when the real benchmark files are absent."""


COMMIT = "a" * 40


@dataclass
class FakeHub:
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, path) -> content
    requests: list[str] = field(default_factory=list)
    fail_next: int = 0  # answer this many GETs with 500 first
    corrupt_next: int = 0  # serve this many GETs with a flipped byte (the ETag stays the true sha256)
    url: str = ""
    server: http.server.ThreadingHTTPServer | None = None  # to stop it mid-test (the second run is offline)


def _handler(state: FakeHub) -> type[http.server.BaseHTTPRequestHandler]:
    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _find(self) -> tuple[str, str] | None:
            u = urlparse(self.path)
            p = unquote(u.path)
            if p.startswith("/datasets/") and "/resolve/" in p:
                repo, rest = p[len("/datasets/") :].split("/resolve/", 1)
                return repo, rest.split("/", 1)[1]
            if p.startswith("/api/v1/datasets/") and p.endswith("/repo"):
                q = parse_qs(u.query)
                return p[len("/api/v1/datasets/") : -len("/repo")], q.get("FilePath", [""])[0]
            return None

        def _serve(self, body: bool) -> None:
            state.requests.append(f"{self.command} {self.path}")
            key = self._find()
            data = state.files.get(key) if key else None
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                return
            if body and state.fail_next > 0:
                state.fail_next -= 1
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            sha = hashlib.sha256(data).hexdigest()
            if body and state.corrupt_next > 0:
                state.corrupt_next -= 1
                data = bytes([data[0] ^ 1]) + data[1:]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{sha}"')
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self) -> None:
            self._serve(False)

        def do_GET(self) -> None:
            self._serve(True)

    return H


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    state = FakeHub()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    state.server = server
    monkeypatch.setenv("HF_ENDPOINT", state.url)
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", state.url)
    monkeypatch.setenv("EVALSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms_home"))
    for k in hub.OFFLINE_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(shared_hub, "RETRY_DELAY_S", 0.0)  # the downloader shared by eval and perf
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _cmmlu_zip() -> bytes:
    """The original CMMLU release zip: one top-level folder with test/ and dev/ (two subjects suffice)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for split in ("test", "dev"):
            for subject in ("anatomy", "astronomy"):
                z.write(DATA / "cmmlu" / split / f"{subject}.csv", f"cmmlu_v1_0_1/{split}/{subject}.csv")
    return buf.getvalue()


def _prepare(hub_name: str, tmp_path: Path, dataset: str, **args: object) -> EvalRunner:
    cfg = build_config(
        {
            "datasets": [dataset],
            "dataset_hub": hub_name,
            "work_dir": str(tmp_path / "o"),
            "dataset_args": {dataset: args} if args else {},
        }
    )
    runner = EvalRunner(cfg)
    runner.prepare()
    return runner


@pytest.mark.parametrize("hub_name", ["huggingface", "modelscope"])
def test_download_then_second_run_offline(
    hub_name: str, fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("huggingface_hub" if hub_name == "huggingface" else "modelscope")
    src = hub.HUB_SOURCES["math_500"][hub_name]
    original = (DATA / "math500" / "test.jsonl").read_bytes()
    fake_hub.files[(src.repo, "test.jsonl")] = original
    runner = _prepare(hub_name, tmp_path, "math_500")
    assert len(runner.tasks[0].samples) == 500
    cached = tmp_path / "cache" / "datasets" / "math500"
    assert (cached / "test.jsonl").read_bytes() == original
    marker = (cached / hub.MARKER).read_text()
    assert src.repo in marker and hashlib.sha256(original).hexdigest() in marker
    assert any("test.jsonl" in r for r in fake_hub.requests)
    # second run: the cache is complete, nothing goes to the network, even offline
    fake_hub.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runner = _prepare(hub_name, tmp_path, "math_500")
    assert len(runner.tasks[0].samples) == 500
    assert fake_hub.requests == []


def test_zip_release_is_unpacked_for_the_loader(fake_hub: FakeHub, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    src = hub.HUB_SOURCES["cmmlu"]["huggingface"]
    fake_hub.files[(src.repo, src.files[0].path)] = _cmmlu_zip()
    runner = _prepare("huggingface", tmp_path, "cmmlu", subset_list=["anatomy", "astronomy"], few_shot_num=2)
    t = runner.tasks[0]
    assert {s.subset for s in t.samples} == {"anatomy", "astronomy"}
    assert (tmp_path / "cache" / "datasets" / "cmmlu" / "test" / "anatomy.csv").read_bytes() == (
        DATA / "cmmlu" / "test" / "anatomy.csv"
    ).read_bytes()


def test_transient_errors_and_corrupt_downloads_are_retried(fake_hub: FakeHub, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    src = hub.HUB_SOURCES["math_500"]["huggingface"]
    original = (DATA / "math500" / "test.jsonl").read_bytes()
    fake_hub.files[(src.repo, "test.jsonl")] = original
    fake_hub.corrupt_next = 1  # the first download does not match the ETag's sha256
    root = tmp_path / "cache" / "datasets"
    hub.ensure_dataset("math_500", "math500", "huggingface", root)
    assert (root / "math500" / "test.jsonl").read_bytes() == original
    gets = [r for r in fake_hub.requests if r.startswith("GET")]
    assert len(gets) >= 2


def test_corrupt_every_time_fails_with_one_line(fake_hub: FakeHub, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    src = hub.HUB_SOURCES["math_500"]["huggingface"]
    fake_hub.files[(src.repo, "test.jsonl")] = (DATA / "math500" / "test.jsonl").read_bytes()
    fake_hub.corrupt_next = 100
    root = tmp_path / "cache" / "datasets"
    with pytest.raises(DatasetError, match=r"failed after 3 attempts: ChecksumError") as exc:
        hub.ensure_dataset("math_500", "math500", "huggingface", root)
    assert "--dataset-dir" in exc.value.one_line()
    assert not (root / "math500").exists()  # nothing half-installed


def test_offline_without_cache_names_dataset_cache_and_dataset_dir(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = tmp_path / "cache" / "datasets"
    with pytest.raises(DatasetError) as exc:
        hub.ensure_dataset("math_500", "math500", "huggingface", root)
    line = exc.value.one_line()
    assert "HuggingFaceH4/MATH-500" in line and str(root / "math500") in line and "--dataset-dir" in line
    assert "\n" not in line and fake_hub.requests == []


def test_benchmark_without_hub_source_is_one_clear_line(fake_hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as exc:
        _prepare("huggingface", tmp_path, "bbh")
    line = exc.value.one_line()
    assert "'bbh'" in line and "--dataset-dir" in line and "datasets/bbh" in line
    assert fake_hub.requests == []


def test_missing_repo_file_is_not_retried(fake_hub: FakeHub, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    with pytest.raises(
        DatasetError, match=r"'math_500': huggingface dataset .* has no file 'test\.jsonl'"
    ) as e:
        hub.ensure_dataset("math_500", "math500", "huggingface", tmp_path / "cache" / "datasets")
    assert "--dataset-dir" in e.value.one_line() and "cache" in e.value.one_line()
    assert len([r for r in fake_hub.requests if r.startswith("HEAD")]) <= 2


def test_copy_placed_by_hand_is_used_and_never_overwritten(fake_hub: FakeHub, tmp_path: Path) -> None:
    root = tmp_path / "cache" / "datasets"
    (root / "math500").mkdir(parents=True)
    (root / "math500" / "test.jsonl").write_bytes((DATA / "math500" / "test.jsonl").read_bytes())
    assert hub.ensure_dataset("math_500", "math500", "huggingface", root) == root / "math500"
    assert fake_hub.requests == [] and not (root / "math500" / hub.MARKER).exists()


def _parquet(rows: list[dict[str, object]]) -> bytes:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def _jsonl(path: Path) -> list[dict[str, object]]:
    import gzip
    import json

    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [json.loads(x) for x in raw.decode().splitlines() if x.strip()]


def _hf_arc(row: dict) -> dict:  # type: ignore[type-arg]
    """The Hugging Face ai2_arc row layout: choices as {text: [..], label: [..]}."""
    q = row["question"]
    return {
        "id": row["id"],
        "question": q["stem"],
        "choices": {"text": [c["text"] for c in q["choices"]], "label": [c["label"] for c in q["choices"]]},
        "answerKey": row["answerKey"],
    }


def _serve_parquet_copies(fake: FakeHub) -> None:
    """Parquet files in the Hugging Face layouts of gsm8k, ai2_arc, openai_humaneval and mbpp (full)."""
    src = hub.HUB_SOURCES
    for split in ("test", "train"):
        rows = _jsonl(DATA / "gsm8k" / f"{split}.jsonl")
        fake.files[(src["gsm8k"]["huggingface"].repo, f"main/{split}-00000-of-00001.parquet")] = _parquet(
            rows
        )
    for sub in ("ARC-Easy", "ARC-Challenge"):
        for split in ("Test", "Train"):
            rows = [_hf_arc(r) for r in _jsonl(DATA / "arc" / sub / f"{sub}-{split}.jsonl")]
            path = f"{sub}/{split.lower()}-00000-of-00001.parquet"
            fake.files[(src["arc"]["huggingface"].repo, path)] = _parquet(rows)
    rows = _jsonl(DATA / "humaneval" / "HumanEval.jsonl.gz")
    fake.files[(src["humaneval"]["huggingface"].repo, "openai_humaneval/test-00000-of-00001.parquet")] = (
        _parquet(rows)
    )
    mbpp = _jsonl(DATA / "mbpp" / "mbpp.jsonl")
    parts = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}
    for split, (lo, hi) in parts.items():
        rows = [r for r in mbpp if lo <= int(r["task_id"]) <= hi]  # type: ignore[call-overload]
        fake.files[(src["mbpp"]["huggingface"].repo, f"full/{split}-00000-of-00001.parquet")] = _parquet(rows)


@pytest.mark.parametrize(
    ("dataset", "args"),
    [
        ("gsm8k", {"few_shot_num": 4}),
        ("arc", {"few_shot_num": 2}),
        ("humaneval", {}),
        ("mbpp", {}),
    ],
)
def test_parquet_copies_are_written_back_in_the_original_format(
    fake_hub: FakeHub, tmp_path: Path, dataset: str, args: dict[str, object]
) -> None:
    """The samples from a hub parquet copy equal the samples from the original files."""
    pytest.importorskip("huggingface_hub")
    _serve_parquet_copies(fake_hub)
    cfg = {"allow_code_execution": True} if dataset in ("humaneval", "mbpp") else {}
    hub_cfg = build_config(
        {"datasets": [dataset], "dataset_args": {dataset: args}, "work_dir": str(tmp_path / "o"), **cfg}
    )
    local_cfg = build_config(
        {
            "datasets": [dataset],
            "dataset_args": {dataset: args},
            "dataset_dir": str(DATA),
            "work_dir": str(tmp_path / "o"),
            **cfg,
        }
    )
    from_hub, from_files = EvalRunner(hub_cfg), EvalRunner(local_cfg)
    from_hub.prepare()
    from_files.prepare()
    a, b = from_hub.tasks[0].samples, from_files.tasks[0].samples
    assert len(a) == len(b) > 0
    assert [(s.id, s.messages, s.gold, s.subset) for s in a] == [
        (s.id, s.messages, s.gold, s.subset) for s in b
    ]


@pytest.mark.parametrize(
    ("hub_name", "module"), [("huggingface", "huggingface_hub"), ("modelscope", "modelscope")]
)
def test_missing_client_library_is_one_line_naming_the_extra(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_name: str, module: str
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    if hub_name == "modelscope":
        monkeypatch.setitem(sys.modules, "modelscope.hub.file_download", None)
    from evalscope.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        hub.ensure_dataset("math_500", "math500", hub_name, tmp_path / "cache" / "datasets")
    line = exc.value.one_line()
    assert "evalscope[hub]" in line and "--dataset-dir" in line and "'math_500'" in line
    assert fake_hub.requests == []


# ---- perf: --dataset openqa / longalpaca without --dataset-path (issue 18) ---------------------------------

_OPENQA = "".join(
    json.dumps({"question": f"问题 {i}: what is the capital of country number {i}?", "human_answers": ["x"]})
    + "\n"
    for i in range(6)
).encode()
_LONGALPACA = json.dumps(
    [{"instruction": f"Summarise document {i}: " + "word " * (20 + i), "output": "ok"} for i in range(5)]
).encode()


def _perf(
    fake: FakeHub, tmp_path: Path, dataset: str, out: str, **env: str
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in shared_hub.OFFLINE_ENV}
    full.update(
        {"COLUMNS": "200", "MODELSCOPE_ENDPOINT": fake.url, "EVALSCOPE_CACHE": str(tmp_path / "cache")}
    )
    full.update({"MODELSCOPE_CACHE": str(tmp_path / "ms_home"), **env})
    args = ["--dataset", dataset, "-n", "3", "--parallel", "1", "--outputs-dir", str(tmp_path / out)]
    return subprocess.run(
        [sys.executable, "-m", "evalscope", "perf", "--no-live", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
    )


def _stop(fake: FakeHub) -> None:
    assert fake.server is not None
    fake.server.shutdown()
    fake.server.server_close()


@pytest.mark.parametrize(
    ("dataset", "content"), [("openqa", _OPENQA), ("longalpaca", _LONGALPACA)], ids=["openqa", "longalpaca"]
)
def test_perf_dataset_from_hub_then_from_cache_offline(
    fake_hub: FakeHub, tmp_path: Path, dataset: str, content: bytes
) -> None:
    """First run downloads upstream's file from the (fake) ModelScope hub; the second runs with the hub down."""
    pytest.importorskip("modelscope")
    from evalscope.perf.datasets.hub import PERF_HUB_SOURCES

    src = PERF_HUB_SOURCES[dataset]
    fake_hub.files[(src.repo, src.files[0].path)] = content
    first = _perf(fake_hub, tmp_path, dataset, "o1")
    assert first.returncode == 0, first.stderr
    assert any(src.files[0].path in r for r in fake_hub.requests), fake_hub.requests
    cached = tmp_path / "cache" / "datasets" / "perf" / dataset / src.files[0].dest
    assert cached.read_bytes() == content
    _stop(fake_hub)
    second = _perf(fake_hub, tmp_path, dataset, "o2", MODELSCOPE_OFFLINE="1")
    assert second.returncode == 0, second.stderr
    summary = json.loads(next((tmp_path / "o2").glob("*/summary.json")).read_text())
    assert "3" in json.dumps(summary)


def test_perf_corrupted_cache_is_detected_by_checksum(fake_hub: FakeHub, tmp_path: Path) -> None:
    """A cached file changed on disk no longer matches its recorded sha256: offline it is refused, online it is
    installed again."""
    pytest.importorskip("modelscope")
    from evalscope.perf.datasets.hub import PERF_HUB_SOURCES

    src = PERF_HUB_SOURCES["openqa"]
    fake_hub.files[(src.repo, "open_qa.jsonl")] = _OPENQA
    assert _perf(fake_hub, tmp_path, "openqa", "o1").returncode == 0
    cached = tmp_path / "cache" / "datasets" / "perf" / "openqa" / "open_qa.jsonl"
    cached.write_bytes(_OPENQA.replace(b"capital", b"CAPITAL"))  # same size, other content
    offline = _perf(fake_hub, tmp_path, "openqa", "o2", MODELSCOPE_OFFLINE="1")
    assert offline.returncode == 2 and "not in the cache" in offline.stderr
    again = _perf(fake_hub, tmp_path, "openqa", "o3")  # reinstalled (from the client's cache or the hub)
    assert again.returncode == 0, again.stderr
    assert cached.read_bytes() == _OPENQA


def test_perf_offline_without_cache_is_one_line_exit_2(fake_hub: FakeHub, tmp_path: Path) -> None:
    res = _perf(fake_hub, tmp_path, "openqa", "o", MODELSCOPE_OFFLINE="1")
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    cache = str(tmp_path / "cache" / "datasets" / "perf" / "openqa")
    assert "AI-ModelScope/HC3-Chinese" in lines[0] and cache in lines[0] and "--dataset-path" in lines[0]
    assert "Traceback" not in res.stderr and fake_hub.requests == []


def test_perf_hub_file_retries_a_failed_download(fake_hub: FakeHub, tmp_path: Path) -> None:
    """A transient server error is retried (by the client or the shared downloader); the install is complete."""
    pytest.importorskip("modelscope")
    from evalscope.perf.datasets.hub import PERF_HUB_SOURCES, hub_file

    src = PERF_HUB_SOURCES["longalpaca"]
    fake_hub.files[(src.repo, "LongAlpaca-12k.json")] = _LONGALPACA
    fake_hub.fail_next = 1
    path = hub_file("longalpaca")
    assert path == tmp_path / "cache" / "datasets" / "perf" / "longalpaca" / "LongAlpaca-12k.json"
    assert path.read_bytes() == _LONGALPACA
    assert shared_hub.complete(path.parent, src)
    assert len([r for r in fake_hub.requests if r.startswith("GET")]) >= 2
