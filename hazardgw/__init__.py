"""``hazardgw``: the command line and the demo, the one package that composes the others.

It imports the gateway, the simulators and the console; none of them imports it (the contracts
in pyproject.toml, checked by ``lint-imports``). The example site of the demo is package data
(``hazardgw/examples/site.yaml``), so ``hazardgw demo`` works from an installed wheel.
"""

from gateway import __version__

__all__ = ["__version__"]
