from django.apps import AppConfig


class EmergencyConfig(AppConfig):
    """Emergency mode lives under cockpit/ (DESIGN.md layout) as its own app, with its own migrations."""

    name = "zhizhi.cockpit.emergency"
    label = "emergency"
    verbose_name = "应急指挥"
