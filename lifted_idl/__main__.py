"""``python -m lifted_idl``: the ``lifted-idl`` command (see :mod:`lifted_idl.cli`)."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while Python imports the (light) command module
    print("lifted-idl: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
