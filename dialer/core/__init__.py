"""The pure dialer core: agents, hopper, pacers, router, outcomes, abandon accounting.

`CampaignEngine` ties them together as a sans-IO object that the live runtime and the
simulator both drive (see engine.py for the protocol).
"""

from dialer.core.abandon import AbandonLedger, WindowCounts
from dialer.core.actions import (
    Action,
    AgentStateChanged,
    AttemptFinished,
    BridgeTo,
    Dial,
    EndCall,
    LeadUpdate,
    NeedLeads,
    PlayMessage,
    PreviewOffer,
    ScreenPop,
)
from dialer.core.config import EngineConfig
from dialer.core.engine import CampaignEngine
from dialer.core.engine_state import EngineCounters
from dialer.core.errors import (
    CoreError,
    EngineConfigError,
    IllegalTransitionError,
    InvalidDispositionError,
    InvalidInputError,
    UnknownAgentError,
    UnknownCallError,
)
from dialer.core.governor import AbandonGovernor, GovernorSettings
from dialer.core.hopper import Hopper, order_leads
from dialer.core.outcomes import apply_disposition, apply_system_result
from dialer.core.pacer import (
    AbandonBudget,
    LineLimits,
    Pacer,
    PacerSnapshot,
    clamp_to_limits,
    over_cap_clamp,
    pacer_for,
    power_pacer,
    predictive_pacer,
    preview_pacer,
    progressive_pacer,
)
from dialer.core.router import TieBreak, choose_agent
from dialer.core.tickets import LeadTicket

__all__ = [
    "AbandonBudget",
    "AbandonGovernor",
    "AbandonLedger",
    "Action",
    "AgentStateChanged",
    "AttemptFinished",
    "BridgeTo",
    "CampaignEngine",
    "CoreError",
    "Dial",
    "EndCall",
    "EngineConfig",
    "EngineConfigError",
    "EngineCounters",
    "GovernorSettings",
    "Hopper",
    "IllegalTransitionError",
    "InvalidDispositionError",
    "InvalidInputError",
    "LeadTicket",
    "LeadUpdate",
    "LineLimits",
    "NeedLeads",
    "Pacer",
    "PacerSnapshot",
    "PlayMessage",
    "PreviewOffer",
    "ScreenPop",
    "TieBreak",
    "UnknownAgentError",
    "UnknownCallError",
    "WindowCounts",
    "apply_disposition",
    "apply_system_result",
    "choose_agent",
    "clamp_to_limits",
    "order_leads",
    "over_cap_clamp",
    "pacer_for",
    "power_pacer",
    "predictive_pacer",
    "preview_pacer",
    "progressive_pacer",
]
