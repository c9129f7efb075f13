"""``python -m crysatom_featurizers``: the ``crysatom`` command line."""

import sys

from crysatom_featurizers.cli import main

if __name__ == "__main__":
    sys.exit(main())
