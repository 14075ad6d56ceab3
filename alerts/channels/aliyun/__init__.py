"""Alibaba Cloud: SMS (``SendSms``) and voice IVR (``IvrCall``), and their receipts."""

from alerts.channels.aliyun.client import AliyunAccount, AliyunSms, AliyunVoice

__all__ = ["AliyunAccount", "AliyunSms", "AliyunVoice"]
