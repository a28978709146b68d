"""``evalscope arena``: candidate models answer the same questions and an LLM judge compares them.

Modules: ``config`` (ArenaConfig, the one declaration of every option), ``questions`` (question sets, answer
files, the built-in set), ``verdict`` (judge templates, strict verdict parsing), ``journal`` (append-only
journals and judgment keys), ``stats`` (Bradley-Terry, bootstrap, online Elo, length-controlled GLM),
``report`` (the report dict and console board, a pure function of the journal), ``runner`` (orchestration).

May import: ``engine``, ``eval.models`` (the Model protocol, ApiModel), ``sim`` (to start the simulated judge
and its truth model), ``errors``, ``tokens``. Nothing imports the arena except the CLI and ``run``.
"""
