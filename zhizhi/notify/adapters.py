"""One adapter per channel. Each receives an OutboxMessage and either returns (delivered) or raises
`DeliveryError` (retry later). HTTP adapters send the outbox idempotency key in the
`Idempotency-Key` header so a gateway that saw a message already can drop the repeat."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, ClassVar, Protocol

from django.conf import settings
from django.core.mail import send_mail

from zhizhi.notify.models import InboxMessage, OutboxMessage


class DeliveryError(Exception):
    pass


class Adapter(Protocol):
    channel: ClassVar[str]

    def deliver(self, message: OutboxMessage) -> None: ...


def _post_json(url: str, payload: dict[str, Any], key: str, timeout: float = 5.0) -> None:
    if not url.startswith(("http://", "https://")):
        raise DeliveryError(f"no gateway configured (url={url!r})")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=json.dumps(payload, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            if response.status >= 300:
                raise DeliveryError(f"HTTP {response.status}")
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise DeliveryError(str(exc)) from exc
    # Robot webhooks answer 200 with an error code in the body.
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return
    if isinstance(data, dict) and data.get("errcode") not in (None, 0):
        raise DeliveryError(f"errcode {data.get('errcode')}: {data.get('errmsg', '')}")


class InboxAdapter:
    channel = "inbox"

    def deliver(self, message: OutboxMessage) -> None:
        if message.user_id is None:
            raise DeliveryError("inbox message without a user")
        InboxMessage.objects.get_or_create(
            outbox_key=message.idempotency_key,
            defaults={
                "user_id": message.user_id,
                "subject": message.subject or message.body[:60],
                "body": message.body,
                "link": message.link,
            },
        )


class SMSAdapter:
    """An HTTP SMS gateway: POST {phone, template, text} to ZHIZHI_SMS_URL."""

    channel = "sms"

    def deliver(self, message: OutboxMessage) -> None:
        payload = {"phone": message.recipient, "text": message.body, "sign": settings.ZHIZHI_SMS_SIGN}
        _post_json(settings.ZHIZHI_SMS_URL, payload, message.idempotency_key)


class RobotAdapter:
    """DingTalk / 浙政钉 and WeCom group robots: a webhook URL per named robot."""

    channel = "dingtalk"
    setting = "ZHIZHI_DINGTALK_WEBHOOKS"

    def deliver(self, message: OutboxMessage) -> None:
        hooks: dict[str, str] = getattr(settings, self.setting)
        url = hooks.get(message.recipient, "")
        text = f"{message.subject}\n{message.body}".strip()
        if message.link:
            text += f"\n{message.link}"
        _post_json(url, {"msgtype": "text", "text": {"content": text}}, message.idempotency_key)


class WeComAdapter(RobotAdapter):
    channel = "wecom"
    setting = "ZHIZHI_WECOM_WEBHOOKS"


class EmailAdapter:
    channel = "email"

    def deliver(self, message: OutboxMessage) -> None:
        try:
            send_mail(message.subject or "智治通知", message.body, None, [message.recipient])
        except OSError as exc:
            raise DeliveryError(str(exc)) from exc


ADAPTERS: dict[str, Adapter] = {
    a.channel: a for a in (InboxAdapter(), SMSAdapter(), RobotAdapter(), WeComAdapter(), EmailAdapter())
}


class WebhookAdapter:
    """A generic JSON callback (e.g. a hotline system's result callback): POST the message body, a
    JSON object, to the recipient URL (other apps resolve their recipient names to URLs through
    notify.services.RESOLVERS at delivery)."""

    channel: ClassVar[str] = "webhook"

    def deliver(self, message: OutboxMessage) -> None:
        try:
            payload = json.loads(message.body)
        except ValueError:
            raise DeliveryError("webhook body is not JSON") from None
        _post_json(message.recipient, payload, message.idempotency_key)


ADAPTERS["webhook"] = WebhookAdapter()
