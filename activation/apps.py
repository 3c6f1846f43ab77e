from django.apps import AppConfig


class ActivationConfig(AppConfig):
    """Destinations, activations and export runs (see issue 7)."""

    name = "activation"
