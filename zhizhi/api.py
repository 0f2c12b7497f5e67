"""The API under /api/v1/: one NinjaAPI, every app's router registered here."""

from ninja import NinjaAPI

api = NinjaAPI(title="Zhizhi API", version="1", urls_namespace="api")
