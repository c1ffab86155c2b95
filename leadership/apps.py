from django.apps import AppConfig


class LeadershipConfig(AppConfig):
    name = "leadership"
    verbose_name = "Worker leadership"
    default_auto_field = "django.db.models.BigAutoField"
