"""``python -m lrviz``: the command line (see ``lrviz.cli``)."""

import sys

from lrviz.cli import main

if __name__ == "__main__":
    sys.exit(main())
