"""`python -m streamcodec.cli`: the same as the `streamcodec` command."""

import sys

from . import main

sys.exit(main())
