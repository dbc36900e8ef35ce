"""``python -m hazardgw`` is ``hazardgw``."""

from hazardgw.cli import main

raise SystemExit(main())
