"""Channels per recipient (SPEC §11): which provider carries an SMS, a call or a team post.

``resolver`` picks the provider by phone prefix; ``dispatch`` is the point of delivery;
``budget`` keeps the carriers' per-number limit. One folder per provider (``twilio``,
``console``, ``aliyun``, ``dingtalk``, ``wecom``) holds its client and what its webhooks
carry; the HTTP routes in ``gateway.api`` only wire them up. Twilio and the console speak the
small :class:`~alerts.notifiers.base.Notifier` protocol, adapted by :class:`NotifierProvider`.
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
