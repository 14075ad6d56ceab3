"""Channels per recipient (SPEC §11): which provider carries an SMS, a call or a team post.

``resolver`` picks the provider by phone prefix; ``dispatch`` is the point of delivery;
``budget`` keeps the carriers' per-number limit; one folder per provider (``aliyun``,
``dingtalk``, ``wecom``) beside the classic notifiers in :mod:`alerts.notifiers`.
"""

from alerts.channels.base import NotifierProvider, Outgoing, Provider
from alerts.channels.dispatch import ROBOT_CHANNEL, ChannelDispatcher, Sent, ThrottledError
from alerts.channels.resolver import ChannelResolver

__all__ = [
    "ROBOT_CHANNEL",
    "ChannelDispatcher",
    "ChannelResolver",
    "NotifierProvider",
    "Outgoing",
    "Provider",
    "Sent",
    "ThrottledError",
]
