"""``python -m deeprnn train|generate|evaluate``: the same as the ``deeprnn`` console script."""
import sys

from .cli import main

sys.exit(main())
