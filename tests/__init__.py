"""The test suite. Importing it (pytest does, before tests/conftest.py) lets Python and pytest write bytecode
caches even where PYTHONDONTWRITEBYTECODE is set: otherwise each worker compiles and assertion-rewrites every test
module and hub module anew on every run, and each process a test starts (``hub serve``, the demo subgraph, the
CLI) compiles the hub again: about 4 s of CPU a worker (the caches go to ``__pycache__/``, ignored by git)."""

import sys

sys.dont_write_bytecode = False
