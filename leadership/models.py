"""The database's half of worker leadership: the highest fencing token any leader has shown.

One row per fenced role ("worker"). A leader writes its token here when it takes over and every
fill it writes checks the token under this row's lock, so a leader that lost its lease without
knowing it (paused, cut off from Redis) can no longer write: its token is lower than the new one.
"""

from django.db import models


class Fence(models.Model):
    name = models.CharField(primary_key=True, max_length=40)
    token = models.BigIntegerField(default=0, help_text="The highest fencing token seen; lower ones are refused")
    holder = models.CharField(max_length=200, blank=True, help_text="The worker that showed it")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}: token {self.token} ({self.holder})"
