"""Who may manage environments: staff always, others when given the permission."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import BaseBackend

from migrator.models import MANAGE_PERMISSION


class StaffManageEnvironments(BaseBackend):
    """Grants ``migrator.manage_environments`` to active staff.

    Anyone else gets it the usual way: directly, or through a group
    (Django admin → Groups). Listed after ModelBackend in
    ``AUTHENTICATION_BACKENDS``; it authenticates no one.
    """

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return perm == MANAGE_PERMISSION and user_obj.is_active and user_obj.is_staff
