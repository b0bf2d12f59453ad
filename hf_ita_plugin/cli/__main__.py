"""``python -m hf_ita_plugin.cli``: the same as the ``hf-ita`` console script."""

import sys

from .main import console_main

sys.exit(console_main())
