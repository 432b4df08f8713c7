"""``python -m bench.calls``: the calls bench, run inside a private network namespace (see bench/README.md)."""

import sys

from bench.calls.conductor import main

sys.exit(main())
