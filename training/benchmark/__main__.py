"""``python -m training.benchmark``."""

from training.benchmark.cli import main

raise SystemExit(main())
