"""Did-you-mean that suggests only near-misspellings of an option, never an option of another kind.

click proposes any name ``difflib`` finds somewhat close (``--stop`` -> ``--top-p``, ``--wandb-api-key`` ->
``--api-key``: a tracker's secret offered as the endpoint's key). Here a suggestion must be a typo of the
whole name: similarity >= 0.8 on the name without its dashes, with the same number of dash-separated words
(or the typed words all present in the option's).
"""

from __future__ import annotations

import difflib

import click

CUTOFF = 0.8


def close_options(typed: str, options: list[str]) -> list[str]:
    """Options that ``typed`` is plausibly a misspelling of (best first)."""
    name = typed.lstrip("-").replace("_", "-")
    words = set(name.split("-"))
    scored = []
    for opt in options:
        cand = opt.lstrip("-")
        ratio = difflib.SequenceMatcher(None, name, cand).ratio()
        cand_words = cand.split("-")
        # same shape (a typo inside the words) or a word left out; never a different split into words
        same_kind = len(cand_words) == len(words) or words <= set(cand_words)
        if ratio >= CUTOFF and same_kind:
            scored.append((ratio, opt))
    return [opt for _, opt in sorted(scored, reverse=True)[:3]]


class StrictSuggestCommand(click.Command):
    """A click command whose unknown-option error suggests only misspellings."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            names: list[str] = []
            for p in self.get_params(ctx):
                if isinstance(p, click.Option):
                    names += [o for o in (*p.opts, *p.secondary_opts) if o.startswith("--")]
            raise click.NoSuchOption(
                exc.option_name, possibilities=close_options(exc.option_name, names), ctx=exc.ctx
            ) from None
