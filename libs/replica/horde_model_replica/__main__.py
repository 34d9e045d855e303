"""`python -m horde_model_replica`: see _cli.py."""

import sys

from ._cli import main

sys.exit(main())
