"""WeCom (企业微信) group robot: the webhook URL carries its key."""

from alerts.channels.wecom.robot import post_wecom

__all__ = ["post_wecom"]
