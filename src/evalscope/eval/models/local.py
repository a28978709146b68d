"""The models that run ``--model`` weights here, by ``--backend``: one table the runner consults.

``transformers`` is in-process (:mod:`evalscope.eval.models.transformers_model`); the managed servers
(``vllm``, ``llama.cpp``, ``sglang``, ``swift``) register their builder in :data:`BUILDERS` the same way.
A builder takes the :class:`~evalscope.eval.config.EvalConfig` and the runner's keyword arguments (``cache``,
``say``) and returns an unstarted :class:`~evalscope.eval.models.base.Model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evalscope.errors import ConfigError
from evalscope.eval.models.base import Model


def _transformers(cfg: Any, **kw: Any) -> Model:
    from evalscope.eval.models.transformers_model import TransformersModel

    return TransformersModel(
        cfg.model,
        hub=cfg.model_hub,
        model_args=cfg.model_args,
        chat_template=cfg.chat_template,
        template_type=cfg.template_type,
        batch_size=cfg.eval_batch_size,
        cache=kw.get("cache"),
        say=kw.get("say"),
    )


#: backend name -> builder (see the module docstring).
BUILDERS: dict[str, Callable[..., Model]] = {"transformers": _transformers}


def build_local_model(backend: str, cfg: Any, **kw: Any) -> Model:
    """The unstarted model ``backend`` runs ``cfg.model`` with; a ConfigError when that backend is not here."""
    builder = BUILDERS.get(backend)
    if builder is None:
        raise ConfigError(
            f"--backend {backend} is not available in this build",
            "use --backend transformers, or serve the model yourself and pass --api-url",
        )
    return builder(cfg, **kw)
