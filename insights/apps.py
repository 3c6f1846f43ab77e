from django.apps import AppConfig


class InsightsConfig(AppConfig):
    """Calculated insights and dashboards (see issue 8)."""

    name = "insights"
