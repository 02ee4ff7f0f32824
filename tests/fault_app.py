"""The WSGI application of the fault tests (``gunicorn tests.fault_app:app``): the registry exactly as
``registry.create_app`` builds it from the environment, plus the failpoint ``REGISTRY_FAULT_POINT`` names, if any."""

from registry import create_app
from tests import fault_points

app = create_app()
fault_points.install(app)
