"""Session-wide test settings, for `make test` and plain `pytest` alike."""

import os

# Notebook kernels started by nbval inherit this: set iteration order is then the
# same on every run, so stored outputs stay comparable.
os.environ["PYTHONHASHSEED"] = "0"
