"""Third-party evaluation frameworks behind ``--eval-backend`` (OpenCompass, VLMEvalKit, ThirdParty).

Owns: the :class:`~evalscope.eval.backends.base.EvalBackend` protocol, the adapter registry and one adapter
module per framework. May import ``evalscope.eval`` (config, report), ``evalscope.engine`` and
``evalscope.errors``; never ``evalscope.perf`` or ``evalscope.cli``. Each framework runs in a subprocess, so
its package is imported (if at all) only to check that it is installed.
"""
