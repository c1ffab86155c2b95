from django.apps import AppConfig


class SecurityConfig(AppConfig):
    """Abuse resistance: client addresses, login lockout glue, credential revocation, bounded input."""

    name = "security"

    def ready(self) -> None:
        from security import revocation

        revocation.connect_receivers()
