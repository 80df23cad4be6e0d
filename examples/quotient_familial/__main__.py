"""``python -m examples.quotient_familial --config var/demo/franceconnect.json``."""

from examples.quotient_familial.app import main

raise SystemExit(main())
