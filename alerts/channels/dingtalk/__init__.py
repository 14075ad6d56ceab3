"""DingTalk custom group robot (自定义机器人), signed."""

from alerts.channels.dingtalk.robot import dingtalk_sign, post_dingtalk, signed_url

__all__ = ["dingtalk_sign", "post_dingtalk", "signed_url"]
