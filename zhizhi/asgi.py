"""ASGI entry point (uvicorn), so server-sent events work."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zhizhi.settings")
application = get_asgi_application()
