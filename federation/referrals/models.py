"""The registry of referral message types: name -> model class.

This module performs no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from federation.referrals.caledonian import CaledonianPartnerContact
from federation.referrals.common import Referral
from federation.referrals.marac import DashRiskAssessment, MaracReferral
from federation.referrals.police import PoliceConcern
from federation.referrals.support import SupportReferral

__all__ = ["MESSAGE_TYPES"]

MESSAGE_TYPES: Mapping[str, type[Referral]] = MappingProxyType(
    {
        model.message_type: model
        for model in (
            MaracReferral,
            DashRiskAssessment,
            PoliceConcern,
            SupportReferral,
            CaledonianPartnerContact,
        )
    }
)
