"""The URL map. Pages: zhizhi/web_urls.py; API: zhizhi/api.py (one router registry);
Excel/CSV exchange pages: zhizhi/exchange_urls.py."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from zhizhi.api import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("exchange/", include("zhizhi.exchange_urls")),
    path("open311/v2/", include("zhizhi.open311.urls")),
    path("open311/keys/", include("zhizhi.open311.web_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("", include("zhizhi.web_urls")),
]
if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
