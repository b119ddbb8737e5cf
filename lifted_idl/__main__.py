"""``python -m lifted_idl``: the ``lifted-idl`` command (see :mod:`lifted_idl.cli`)."""

from .cli import main

raise SystemExit(main())
