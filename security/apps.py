from django.apps import AppConfig


class SecurityConfig(AppConfig):
    """Abuse resistance: client addresses, login lockout glue, credential revocation, bounded input."""

    name = "security"

    def ready(self) -> None:
        from realtime import providers
        from security import credentials, revocation

        revocation.connect_receivers()
        providers.register_token_check(credentials.token_refusal)
