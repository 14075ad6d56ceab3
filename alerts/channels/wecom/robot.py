"""WeCom group robot: ``POST`` a text message to ``…/cgi-bin/webhook/send?key=…``.

The key in the URL is the robot's only credential (no signature); WeCom answers HTTP 200
with ``errcode`` 0 on success.
"""

from __future__ import annotations

from alerts.channels.robot_http import post_json

__all__ = ["post_wecom"]


async def post_wecom(webhook: str, text: str, *, request_timeout: float = 10.0) -> None:
    """Post ``text`` to the group.

    Raises:
        DeliveryError: WeCom refused it or could not be reached.
    """
    await post_json(
        "wecom",
        webhook,
        {"msgtype": "text", "text": {"content": text}},
        request_timeout=request_timeout,
    )
