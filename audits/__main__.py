"""``python -m audits``: the audit engine's own command line."""

import sys

from audits.cli import main

sys.exit(main())
