"""``evalscope selftest``: how much latency does this client add, at which load, on this machine?"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from evalscope.cli import run_cli_command
from evalscope.errors import EXIT_THRESHOLD, ConfigError


def _ints(value: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value.replace(",", " ").split())
    except ValueError:
        raise ConfigError(
            f"--parallel {value!r} is not a list of integers", "e.g. --parallel 16,128,512"
        ) from None
    if not out or min(out) < 1:
        raise ConfigError(f"--parallel {value!r} must be positive integers", "e.g. --parallel 16,128")
    return out


@click.command("selftest")
@click.option("--parallel", default="16,128", show_default=True, help="Concurrency levels, comma-separated.")
@click.option(
    "--number",
    type=click.IntRange(min=1),
    default=None,
    help="Requests per level [default: max(2*parallel, 100)].",
)
@click.option("--ttft-ms", type=click.FloatRange(min=0), default=200.0, show_default=True)
@click.option("--itl-ms", type=click.FloatRange(min=0), default=20.0, show_default=True)
@click.option("--output-tokens", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--no-pin", is_flag=True, help="Do not pin the simulator and the client to separate CPUs.")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Also write the result as JSON here."
)
@click.option("--strict", is_flag=True, help="Exit 5 when a level is not measured honestly.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def selftest(
    parallel: str,
    number: int | None,
    ttft_ms: float,
    itl_ms: float,
    output_tokens: int,
    no_pin: bool,
    output: Path | None,
    strict: bool,
    debug: bool,
) -> None:
    """Measure the client's added TTFT and per-event latency against the built-in simulator's truth."""

    def body() -> None:
        import orjson
        from rich.console import Console
        from rich.table import Table

        from evalscope.selftest import SelftestConfig, run_selftest

        cfg = SelftestConfig(_ints(parallel), number, ttft_ms, itl_ms, output_tokens, pin=not no_pin)
        console = Console()
        console.print(
            f"selftest: simulator TTFT {ttft_ms:g} ms, ITL {itl_ms:g} ms, {output_tokens} tokens; levels {list(cfg.parallel)}"
        )
        res = run_selftest(cfg)
        t = Table(
            title="client-added latency, ms: send = simulator kernel received - client sent; "
            "TTFT/event = client received - simulator sent"
        )
        for col in (
            "parallel",
            "send p50",
            "send p99",
            "TTFT p50",
            "TTFT p99",
            "event p50",
            "event p99",
            "loop lag p99",
            "CPU µs/ev",
            "honest",
        ):
            t.add_column(col, justify="right")
        for lv in res["levels"]:
            t.add_row(
                str(lv["parallel"]),
                f"{lv['send_side_ms']['p50']:.3f}",
                f"{lv['send_side_ms']['p99']:.3f}",
                f"{lv['added_ttft_ms']['p50']:.3f}",
                f"{lv['added_ttft_ms']['p99']:.3f}",
                f"{lv['added_event_ms']['p50']:.3f}",
                f"{lv['added_event_ms']['p99']:.3f}",
                f"{lv['loop_lag_ms']['p99'] or 0:.2f}",
                str(lv["cpu_us_per_event"]),
                "yes" if lv["honest"] else "NO",
            )
        console.print(t)
        mh = res["max_honest_parallel"]
        console.print(
            f"largest load measured honestly (added p99 <= {res['honest_p99_limit_ms']:g} ms on each side): "
            + (f"{mh} parallel" if mh else "none of the levels tried")
            + ("" if res["pinned"] else " (not pinned: simulator and client share CPUs)")
        )
        if output:
            output.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))
        if strict and any(not lv["honest"] for lv in res["levels"]):
            sys.exit(EXIT_THRESHOLD)

    run_cli_command(body, debug=debug)
