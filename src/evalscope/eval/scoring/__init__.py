"""Scoring building blocks shared by benchmarks: answer extraction (``extract``), math equivalence
(``math_equiv``), text metrics (``text_metrics``), pass@k (``passk``), program assembly for code benchmarks
(``code``) and mean / stderr (``stats``).

May import: ``evalscope.errors`` and third-party math/text libraries (lazily). Never benchmarks, the runner,
perf or cli.
"""
