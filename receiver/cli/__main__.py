"""`python -m receiver.cli`: the same as the `incident-copilot` command."""

from . import main

raise SystemExit(main())
