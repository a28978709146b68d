"""``image_mcq`` (VLMEvalKit name ``evalscope_image_mcq``): a small image multiple-choice benchmark we draw
ourselves, kept in VLMEvalKit's TSV format, run natively or by the VLMEvalKit backend.

Why our own: the VLMEvalKit backend must run an image MCQ with nothing downloaded, and the public sets are large
and licensed. Each item is a 96x96 PNG of flat shapes (circle, square, triangle, diamond) in named colours, with
one question of four kinds (``colour``, ``shape``, ``count``, ``position``) and options A-D. Everything is drawn
here, without an imaging library (a PNG is an RGB raster, zlib-deflated, in CRC-checked chunks), from a fixed
seed, so :func:`build_tsv` reproduces the committed ``data/image_mcq/evalscope_image_mcq.tsv`` byte for byte
(a test checks it).

Natively (``--datasets image_mcq``), each sample is one user message with the image as an OpenAI ``image_url``
part (a base64 data URL) and the text VLMEvalKit sends beside it, so that a model answers both runs alike; the
answer is scored by our MCQ letter extraction. The data is the packaged TSV, or
``<dataset-dir>/image_mcq/evalscope_image_mcq.tsv`` when present.

TSV columns (VLMEvalKit's MCQ layout): ``index, question, A, B, C, D, answer, category, image`` (base64 PNG).
Every (question, options) text is unique, so an answer key can be keyed on the prompt text.
"""

from __future__ import annotations

import base64
import random
import struct
import zlib
from pathlib import Path
from typing import Any

from evalscope.eval.benchmarks._common import MultipleChoiceBenchmark
from evalscope.eval.benchmarks.base import Benchmark, Loader, PromptTemplate, Record, Sample

SIZE = 96
TSV_NAME = "evalscope_image_mcq"
DATA_FILE = Path(__file__).with_name("data") / "image_mcq" / f"{TSV_NAME}.tsv"
COLUMNS = ("index", "question", "A", "B", "C", "D", "answer", "category", "image")

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 50, 170),
    "orange": (245, 140, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond")
BACKGROUND = (255, 255, 255)


def _inside(kind: str, dx: float, dy: float, r: float) -> bool:
    """Whether offset (dx, dy) from a shape's centre lies in a shape of radius ``r``."""
    if kind == "circle":
        return dx * dx + dy * dy <= r * r
    if kind == "square":
        return abs(dx) <= r * 0.85 and abs(dy) <= r * 0.85
    if kind == "diamond":
        return abs(dx) + abs(dy) <= r
    # triangle, apex up: below the two slanted edges and above the base
    return dy <= r * 0.8 and dy >= -r + 2 * abs(dx)


def draw(shapes: list[tuple[str, str, int, int, int]]) -> bytes:
    """An RGB raster (rows of SIZE pixels) with ``(kind, colour, cx, cy, r)`` shapes painted in order."""
    px = bytearray(bytes(BACKGROUND) * SIZE * SIZE)
    for kind, colour, cx, cy, r in shapes:
        rgb = bytes(COLOURS[colour])
        for y in range(max(0, cy - r), min(SIZE, cy + r + 1)):
            for x in range(max(0, cx - r), min(SIZE, cx + r + 1)):
                if _inside(kind, x - cx, y - cy, r):
                    o = (y * SIZE + x) * 3
                    px[o : o + 3] = rgb
    return bytes(px)


def png(raster: bytes, width: int = SIZE, height: int = SIZE) -> bytes:
    """A truecolour 8-bit PNG of an RGB raster (filter 0 on every row)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    stride = width * 3
    rows = b"".join(b"\x00" + raster[y * stride : (y + 1) * stride] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def _options(rng: random.Random, right: str, pool: list[str]) -> tuple[list[str], str]:
    wrong = rng.sample([p for p in pool if p != right], 3)
    opts = [right, *wrong]
    rng.shuffle(opts)
    return opts, "ABCD"[opts.index(right)]


def build_items(per_kind: int = 6, seed: int = 2026) -> list[dict[str, str]]:
    """The benchmark's rows (image base64-encoded), four kinds of question, ``per_kind`` each."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    seen: set[tuple[str, ...]] = set()
    colours = list(COLOURS)
    positions = {"left": (24, 48), "right": (72, 48), "top": (48, 22), "bottom": (48, 74)}

    def add(
        kind: str, question: str, opts: list[str], answer: str, scene: list[tuple[str, str, int, int, int]]
    ) -> bool:
        key = (question, *opts)
        if key in seen:
            return False
        seen.add(key)
        row = {"index": str(len(rows)), "question": question, "answer": answer, "category": kind}
        row.update(dict(zip("ABCD", opts, strict=True)))
        row["image"] = base64.b64encode(png(draw(scene))).decode()
        rows.append(row)
        return True

    for kind in ("colour", "shape", "count", "position"):
        made = 0
        while made < per_kind:
            shape, colour = rng.choice(SHAPES), rng.choice(colours)
            if kind == "colour":
                opts, ans = _options(rng, colour, colours)
                q = f"What colour is the {shape} in the image?"
                scene = [(shape, colour, 48, 48, 30)]
            elif kind == "shape":
                opts, ans = _options(rng, shape, list(SHAPES))
                q = f"Which shape is drawn in {colour} in the image?"
                scene = [(shape, colour, 48, 48, 30)]
            elif kind == "count":
                n = rng.randint(1, 5)
                opts, ans = _options(rng, str(n), [str(k) for k in range(1, 7)])
                q = f"How many {colour} {shape}s are in the image?"
                spots = rng.sample([(x, y) for x in (16, 48, 80) for y in (16, 48, 80)], n)
                scene = [(shape, colour, x, y, 12) for x, y in spots]
            else:
                where = rng.choice(list(positions))
                opts, ans = _options(rng, where, list(positions))
                q = f"Where is the {colour} {shape} in the image?"
                x, y = positions[where]
                scene = [(shape, colour, x, y, 16)]
            made += add(kind, q, opts, ans, scene)
    return rows


def build_tsv(rows: list[dict[str, str]] | None = None) -> str:
    """The TSV text VLMEvalKit reads (tab-separated, header row, ``\\n`` line ends)."""
    rows = build_items() if rows is None else rows
    lines = ["\t".join(COLUMNS)]
    lines += ["\t".join(r[c] for c in COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


def read_tsv(path: Path = DATA_FILE) -> list[dict[str, str]]:
    """Rows of a TSV in this layout (what the answer key and our conversion read)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"), strict=True)) for ln in lines[1:] if ln]


def vlmeval_prompt(row: dict[str, str]) -> str:
    """The text VLMEvalKit's MCQ datasets send beside the image (question, then ``Options:`` lines)."""
    opts = "".join(f"{k}. {row[k]}\n" for k in "ABCD" if row.get(k))
    return f"Question: {row['question']}\nOptions:\n{opts}Please select the correct answer from the options above. \n"


class ImageMcqLoader(Loader):
    """Rows of the TSV (packaged, or under ``--dataset-dir``) as MCQ records with the image in ``meta``."""

    name = "vlmeval-tsv"
    version = "1"

    def data_files(self, bench: Benchmark) -> list[Path]:
        if bench.dataset_dir is not None:
            local = Path(bench.dataset_dir) / "image_mcq" / f"{TSV_NAME}.tsv"
            if local.is_file():
                return [local]
        return [DATA_FILE]

    def load(self, bench: Benchmark) -> list[Record]:
        out = []
        for row in read_tsv(self.data_files(bench)[0]):
            choices = [row[k] for k in "ABCD" if row.get(k)]
            meta: dict[str, Any] = {
                "image": row["image"],
                "letters": "ABCD"[: len(choices)],
                "row": row["index"],
            }
            out.append(
                Record(
                    row["index"],
                    row["question"],
                    row["answer"],
                    category=row.get("category"),
                    choices=choices,
                    meta=meta,
                )
            )
        return out


class ImageMcqPrompt(PromptTemplate):
    """The image as a ``data:image/png;base64`` part, then VLMEvalKit's question-and-options text."""

    name = "vlmeval-mcq"
    version = "1"

    def render(self, record: Record, bench: Benchmark) -> Sample:
        row = {"question": record.question, **dict(zip("ABCD", record.choices or [], strict=False))}
        parts = [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + record.meta["image"]}},
            {"type": "text", "text": vlmeval_prompt(row)},
        ]
        meta = {"letters": record.meta["letters"]}
        return Sample(
            record.id, [{"role": "user", "content": parts}], record.gold, category=record.category, meta=meta
        )


class ImageMCQ(MultipleChoiceBenchmark):
    """Our drawn image MCQ (colour, shape, count, position), scored by MCQ letter extraction."""

    name = "image_mcq"
    version = "1"
    data_subdir = ""  # packaged data: nothing to fetch from a hub (the loader looks in --dataset-dir itself)
    loader = ImageMcqLoader()
    prompt = ImageMcqPrompt()


if __name__ == "__main__":  # regenerate the committed file: python -m evalscope.eval.benchmarks.image_mcq
    DATA_FILE.parent.mkdir(parents=True, exist_ok=True)
    DATA_FILE.write_text(build_tsv(), encoding="utf-8")
    print(f"wrote {DATA_FILE}")
