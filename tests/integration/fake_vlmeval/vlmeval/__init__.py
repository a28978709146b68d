"""A stand-in for VLMEvalKit (ms-vlmeval) in CI, where the real one (torch, ~6 GB) is not installed.

It keeps the surface the evalscope driver uses (``vlmeval.api.CustomAPIModel``, ``vlmeval.config.supported_VLM``,
``vlmeval.run.run_task``, ``vlmeval.utils.arguments.Arguments``) and VLMEvalKit's observable behaviour for a
custom image MCQ: reads ``$LMUData/<data>.tsv``, sends each question with its image as an OpenAI ``image_url``
part and the options prompt VLMEvalKit builds, extracts the option letter, writes ``<work_dir>/<model>/
<model>_<data>_acc.csv`` (split, Overall, one column per category) and ``status.json``. The real package runs in
the nox session ``vlmeval`` (tests/integration/test_backend_vlmeval.py::test_real_vlmevalkit).
"""
