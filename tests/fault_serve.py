"""``registry serve`` for the fault tests (``python -m tests.fault_serve serve --port N``): the real command, with
its in-process audit worker, plus the failpoint ``REGISTRY_FAULT_POINT`` names, if any."""

import sys

from registry.cli import main
from tests import fault_points

if __name__ == "__main__":
    fault_points.install()
    sys.exit(main())
