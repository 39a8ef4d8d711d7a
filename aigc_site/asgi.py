"""ASGI entry point: `uvicorn aigc_site.asgi:application`. Open event streams hold no worker thread here."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aigc_site.settings")

application = get_asgi_application()

# After Django is set up: refuses bodies larger than any view takes before Django reads them (api/bodylimit.py).
from generation.api.bodylimit import BodyLimit  # noqa: E402

application = BodyLimit(application)
