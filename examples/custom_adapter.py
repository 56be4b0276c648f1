"""Write your own adapter: a small HTTP SMS adapter, sent through a stand-in server.

The adapter only builds requests and reads responses (no I/O); the client does the HTTP.
Here the "provider" is an httpx.MockTransport, so nothing leaves the machine.

    python examples/custom_adapter.py
"""

import json
from typing import ClassVar

import httpx
from pydantic import SecretStr

import anysend
from anysend.providers import Capabilities, Provider, ProviderSettings, error_from_response


class TextlySettings(ProviderSettings):
    api_key: SecretStr
    sender: str = "Shop"


class Textly(Provider):
    """SMS through the (imaginary) Textly API."""

    name: ClassVar[str] = "textly"
    channels: ClassVar[frozenset[anysend.Channel]] = frozenset({anysend.Channel.SMS})
    capabilities: ClassVar[Capabilities] = Capabilities(idempotency=True)
    Settings: ClassVar[type[ProviderSettings]] = TextlySettings
    default_base_url: ClassVar[str] = "https://api.textly.test"
    settings: TextlySettings

    def build_request(self, message: anysend.OutboundMessage) -> httpx.Request:
        return httpx.Request(
            "POST",
            f"{self.default_base_url}/v2/sms",
            json={"from": self.settings.sender, "to": message.to, "body": message.text},
            headers={
                "Authorization": f"Bearer {self.settings.api_key.get_secret_value()}",
                "Idempotency-Key": message.idempotency_key or message.id,
            },
        )

    def parse_response(
        self, response: httpx.Response, message: anysend.OutboundMessage
    ) -> anysend.Receipt:
        if response.status_code == 201:
            return anysend.Receipt(provider_message_id=response.json()["sid"], raw=response.json())
        code = response.json().get("code")
        category = {"unknown_number": anysend.ErrorCategory.INVALID_RECIPIENT}.get(code)
        raise error_from_response(response, self.name, category=category, code=code)


def fake_textly(request: httpx.Request) -> httpx.Response:
    """What Textly would answer: 201 with an id, or 404 for a number it does not know."""
    body = json.loads(request.content)
    if body["to"].endswith("999"):
        return httpx.Response(404, json={"code": "unknown_number"})
    return httpx.Response(201, json={"sid": "TX-" + body["to"][-3:]})


with (
    httpx.Client(transport=httpx.MockTransport(fake_textly)) as http,
    anysend.Client([Textly(api_key="tk_live_secret")], http_client=http) as client,
):
    good = client.send(anysend.Message(text="Hi"), to={"phone": "+48 600 700 800"})
    bad = client.send(anysend.Message(text="Hi"), to={"phone": "+48 600 700 999"})

print(f"good: {good.status.value}, id {good.provider_message_id}")
print(f"bad: {bad.status.value}, {bad.error.category.value if bad.error else '?'}")
print(repr(client.providers["textly"]))  # the API key never prints
assert good.ok
assert not bad.ok
