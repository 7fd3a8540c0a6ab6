"""`python -m streamcodec.cli`: the same as the `streamcodec` command."""

import sys

from .commands import main

sys.exit(main())
