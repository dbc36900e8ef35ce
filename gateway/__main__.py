"""``python -m gateway`` is ``hazardgw``."""

from gateway.cli import main

raise SystemExit(main())
