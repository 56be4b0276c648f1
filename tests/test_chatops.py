"""The chat adapters (Slack, Microsoft Teams, Discord incoming webhooks) on the chat channel."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

import anysend
from anysend import (
    Channel,
    ConfigurationError,
    ErrorCategory,
    Message,
    OutboundMessage,
    ProviderError,
    Recipient,
    RetryPolicy,
    SendResult,
)
from anysend.providers import Provider
from anysend.providers.discord import MAX_CONTENT, Discord
from anysend.providers.slack import Slack
from anysend.providers.teams import Teams
from anysend.testing import VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract

SLACK_TOKEN = "Xq7r2LmN9pT4vW1zK8sD3fGh"
SLACK_URL = f"https://hooks.slack.com/services/T0A1B2C3D/B4E5F6G7H/{SLACK_TOKEN}"
TEAMS_SIG = "k3Jd9sLq0PzX7vBn2MwE5rTy8UiO1aSdFgHjKlZxCvB"
TEAMS_URL = (
    "https://prod-12.westeurope.logic.azure.com/workflows/0123456789abcdef0123456789abcdef"
    "/triggers/manual/paths/invoke?api-version=2016-06-01&sv=1.0&sig=" + TEAMS_SIG
)
DISCORD_TOKEN = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ3kL5mN7pQ9rS1tU3vW5x"
DISCORD_URL = f"https://discord.com/api/webhooks/123456789012345678/{DISCORD_TOKEN}"
SECRETS = (SLACK_URL, SLACK_TOKEN, TEAMS_URL, TEAMS_SIG, DISCORD_URL, DISCORD_TOKEN)

#: Where each adapter's request goes.
TARGETS = {"slack": SLACK_URL, "teams": TEAMS_URL, "discord": DISCORD_URL + "?wait=true"}

#: What Teams connectors answer, with status 200, when the post actually failed.
WRAPPED = (
    "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error "
    "{status} with ContextId tcid=0,server=msgapi-production-weu-01,cv=Ab12Cd34.0.."
)


def slack(**settings: Any) -> Slack:
    """A Slack adapter on the test webhook."""
    return Slack(webhook_url=SLACK_URL, **settings)


def teams() -> Teams:
    """A Teams adapter on the test Workflows webhook."""
    return Teams(webhook_url=TEAMS_URL)


def discord(**settings: Any) -> Discord:
    """A Discord adapter on the test webhook."""
    return Discord(webhook_url=DISCORD_URL, **settings)


ADAPTERS: dict[str, Callable[[], Provider]] = {"slack": slack, "teams": teams, "discord": discord}


def outbound(**fields: Any) -> OutboundMessage:
    """A chat-channel message as the client hands it to an adapter."""
    fields.setdefault("text", "Deploy finished")
    return OutboundMessage(id="msg-1", channel=Channel.CHAT, to="", **fields)


def sent_json(route: respx.Route) -> Any:
    """The JSON body of the last request a route received."""
    return json.loads(route.calls.last.request.read())


def assert_hidden(*texts: str) -> None:
    """None of the webhook URLs nor their tokens appears in ``texts``."""
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def shown(result: SendResult) -> list[str]:
    """Every way a send result is commonly printed or stored."""
    return [repr(result), str(result), result.model_dump_json()]


def send_once(provider: Provider, answer: httpx.Response) -> SendResult:
    """Send one chat message through the sync client, answered with ``answer``, no retries."""
    with respx.mock:
        respx.post(TARGETS[provider.name]).mock(return_value=answer)
        retry = RetryPolicy(max_attempts=1)
        with anysend.Client([provider], clock=VirtualClock(), retry=retry) as client:
            return client.send(Message(text="Deploy finished"), to={}, via=["chat"])


# -- declarations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_chat_adapters_are_addressless_on_the_chat_channel(name: str) -> None:
    """Each adapter serves chat only, needs no recipient address, and takes no idempotency key."""
    provider = ADAPTERS[name]()
    assert provider.name == name
    assert provider.channels == frozenset({Channel.CHAT})
    assert provider.capabilities.addressless
    assert not provider.capabilities.idempotency
    assert not provider.capabilities.webhooks


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_webhook_urls_never_print(name: str) -> None:
    """The webhook URL is hidden from the adapter's repr, its settings and the client's repr."""
    provider = ADAPTERS[name]()
    with anysend.Client([provider]) as client:
        assert_hidden(repr(provider), str(provider.settings), repr(provider.settings), repr(client))


@pytest.mark.parametrize("adapter", [Slack, Teams, Discord])
@pytest.mark.parametrize(
    "url", ["hooks.slack.com/services/T/B/" + SLACK_TOKEN, "ftp://x/" + SLACK_TOKEN]
)
def test_invalid_webhook_url_is_refused_without_quoting_it(
    adapter: type[Provider], url: str
) -> None:
    """A webhook URL that is not absolute http(s) is a ConfigurationError that hides the URL."""
    with pytest.raises(ConfigurationError, match="absolute http") as caught:
        adapter(webhook_url=url)
    assert_hidden(str(caught.value), repr(caught.value))
    assert SLACK_TOKEN not in str(caught.value)


# -- Slack -----------------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
def test_slack_request_through_the_client(respx_mock: respx.MockRouter) -> None:
    """Slack gets one JSON POST {"text": ...} to the webhook URL; "ok" is a receipt without id."""
    route = respx_mock.post(SLACK_URL).mock(return_value=httpx.Response(200, text="ok"))
    with anysend.Client([slack()], clock=VirtualClock()) as client:
        result = client.send(Message(text="Deploy *finished*"), to={}, via=["chat"])
    assert result.ok
    assert (result.provider, result.address, result.provider_message_id) == ("slack", "", None)
    assert result.receipt is not None
    assert result.receipt.raw == "ok"
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == SLACK_URL
    assert request.headers["content-type"] == "application/json"
    assert sent_json(route) == {"text": "Deploy *finished*"}
    assert_hidden(*shown(result))


@respx.mock(assert_all_called=True)
def test_slack_overrides_and_blocks(respx_mock: respx.MockRouter) -> None:
    """username, icon_emoji and channel settings and the blocks provider option are sent."""
    route = respx_mock.post(SLACK_URL).mock(return_value=httpx.Response(200, text="ok"))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Deploy* done"}}]
    message = Message(text="Deploy done", provider_options={"slack": {"blocks": blocks}})
    provider = slack(username="deploy-bot", icon_emoji=":rocket:", channel="#ops")
    with anysend.Client([provider], clock=VirtualClock()) as client:
        assert client.send(message, to={}, via=["chat"]).ok
    assert sent_json(route) == {
        "text": "Deploy done",
        "username": "deploy-bot",
        "icon_emoji": ":rocket:",
        "channel": "#ops",
        "blocks": blocks,
    }


@respx.mock(assert_all_called=True)
def test_chat_id_of_the_recipient_is_ignored(respx_mock: respx.MockRouter) -> None:
    """A recipient's chat id does not change where or what is posted: the webhook decides."""
    route = respx_mock.post(SLACK_URL).mock(return_value=httpx.Response(200, text="ok"))
    ann = Recipient(chat_ids={Channel.CHAT: "C0123ABCD"})
    with anysend.Client([slack()], clock=VirtualClock()) as client:
        result = client.send(Message(text="Hi"), to=ann, via=["chat"])
    assert result.ok
    assert result.address == "C0123ABCD"
    assert str(route.calls.last.request.url) == SLACK_URL
    assert sent_json(route) == {"text": "Hi"}


@pytest.mark.parametrize(
    ("subject", "text", "expected"),
    [
        ("Release 1.2", "Deploy finished", "*Release 1.2*\nDeploy finished"),
        ("Release 1.2", None, "*Release 1.2*"),
        (None, "Deploy finished", "Deploy finished"),
    ],
)
def test_slack_subject_is_a_bold_first_line(
    subject: str | None, text: str | None, expected: str
) -> None:
    """A subject comes first in mrkdwn bold, on its own line."""
    request = slack().build_request(outbound(subject=subject, text=text))
    assert json.loads(request.content) == {"text": expected}


def test_slack_blocks_must_be_a_list() -> None:
    """blocks that are not a list fail the attempt before the network (content_rejected)."""
    with pytest.raises(ProviderError) as caught:
        slack().check_supported(outbound(provider_options={"blocks": {"type": "section"}}))
    assert caught.value.category is ErrorCategory.CONTENT_REJECTED


# -- Microsoft Teams -------------------------------------------------------------------------------


def card(*blocks: dict[str, Any]) -> dict[str, Any]:
    """The message-with-an-Adaptive-Card body Teams gets for ``blocks``."""
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": list(blocks),
                },
            }
        ],
    }


TEXT_BLOCK = {"type": "TextBlock", "text": "Deploy finished", "wrap": True}
TITLE_BLOCK = {
    "type": "TextBlock",
    "text": "Release 1.2",
    "weight": "Bolder",
    "size": "Medium",
    "wrap": True,
}


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_teams_request_through_the_async_client(respx_mock: respx.MockRouter) -> None:
    """Teams gets one Adaptive Card POST to the Workflows URL; 202 Accepted is a receipt."""
    route = respx_mock.post(TEAMS_URL).mock(return_value=httpx.Response(202))
    async with anysend.AsyncClient([teams()], clock=VirtualClock()) as client:
        result = await client.send(Message(text="Deploy finished"), to={}, via=["chat"])
    assert result.ok
    assert (result.provider, result.provider_message_id) == ("teams", None)
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == TEAMS_URL
    assert request.headers["content-type"] == "application/json"
    assert sent_json(route) == card(TEXT_BLOCK)


def test_teams_subject_is_a_title_block() -> None:
    """A subject becomes a bold, medium TextBlock before the text block."""
    request = teams().build_request(outbound(subject="Release 1.2"))
    assert json.loads(request.content) == card(TITLE_BLOCK, TEXT_BLOCK)


@pytest.mark.parametrize(
    "answer", [httpx.Response(200, text="1"), httpx.Response(202), httpx.Response(200)]
)
def test_teams_success_answers(answer: httpx.Response) -> None:
    """A connector's 200 "1" and a workflow's 202 are receipts without an id."""
    receipt = teams().parse_response(answer, outbound())
    assert receipt.provider_message_id is None


# -- Discord ---------------------------------------------------------------------------------------

DISCORD_MESSAGE = {
    "id": "1180000000000000001",
    "type": 0,
    "content": "Deploy finished",
    "channel_id": "1170000000000000002",
    "webhook_id": "123456789012345678",
}


@respx.mock(assert_all_called=True)
def test_discord_request_through_the_client(respx_mock: respx.MockRouter) -> None:
    """Discord gets a JSON POST with wait=true; the created message's id is the receipt's id."""
    route = respx_mock.post(DISCORD_URL + "?wait=true").mock(
        return_value=httpx.Response(200, json=DISCORD_MESSAGE)
    )
    provider = discord(username="Deploy bot", avatar_url="https://cdn.example.test/bot.png")
    with anysend.Client([provider], clock=VirtualClock()) as client:
        result = client.send(Message(text="Deploy finished"), to={}, via=["chat"])
    assert result.ok
    assert (result.provider, result.provider_message_id) == ("discord", "1180000000000000001")
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == DISCORD_URL + "?wait=true"
    assert request.headers["content-type"] == "application/json"
    assert sent_json(route) == {
        "content": "Deploy finished",
        "username": "Deploy bot",
        "avatar_url": "https://cdn.example.test/bot.png",
    }


def test_discord_keeps_query_parameters_of_the_url() -> None:
    """A thread_id in the webhook URL is kept beside wait=true."""
    provider = Discord(webhook_url=DISCORD_URL + "?thread_id=42")
    request = provider.build_request(outbound())
    assert request.url.params == httpx.QueryParams({"thread_id": "42", "wait": "true"})


def test_discord_subject_is_a_bold_first_line() -> None:
    """A subject comes first in Discord Markdown bold, on its own line."""
    request = discord().build_request(outbound(subject="Release 1.2"))
    assert json.loads(request.content) == {"content": "**Release 1.2**\nDeploy finished"}


def test_discord_204_is_a_receipt_without_id() -> None:
    """An answer without a body (no wait) is a receipt without an id."""
    receipt = discord().parse_response(httpx.Response(204), outbound())
    assert (receipt.provider_message_id, receipt.raw) == (None, None)


def test_discord_content_limit_is_checked_before_the_network() -> None:
    """2000 characters pass; 2001 (the subject counted) fail with payload_too_large."""
    provider = discord()
    provider.check_supported(outbound(text="x" * MAX_CONTENT))
    for message in (outbound(text="x" * 2001), outbound(subject="S", text="x" * 1995)):
        with pytest.raises(ProviderError) as caught:
            provider.check_supported(message)
        assert caught.value.category is ErrorCategory.PAYLOAD_TOO_LARGE
        assert caught.value.provider == "discord"


@respx.mock
def test_discord_too_long_content_sends_nothing(respx_mock: respx.MockRouter) -> None:
    """Through the client, content over the limit makes no request and is not sent."""
    route = respx_mock.post(DISCORD_URL + "?wait=true").mock(return_value=httpx.Response(204))
    with anysend.Client([discord()], clock=VirtualClock()) as client:
        result = client.send(Message(text="x" * 2001), to={}, via=["chat"])
    assert not result.ok
    assert route.call_count == 0


@pytest.mark.parametrize(("headers", "expected"), [({}, 1.5), ({"Retry-After": "3"}, 3.0)])
def test_discord_retry_after_from_body_or_header(headers: dict[str, str], expected: float) -> None:
    """A 429's retry_after comes from the header, else from the JSON body."""
    answer = httpx.Response(
        429,
        headers=headers,
        json={"message": "You are being rate limited.", "retry_after": 1.5, "global": False},
    )
    with pytest.raises(ProviderError) as caught:
        discord().parse_response(answer, outbound())
    assert caught.value.category is ErrorCategory.RATE_LIMITED
    assert caught.value.retry_after == expected


# -- errors, through the client --------------------------------------------------------------------

ERRORS: list[tuple[str, httpx.Response, ErrorCategory, str | None, float | None]] = [
    # Slack: status and error string (the body)
    ("slack", httpx.Response(400, text="invalid_payload"), ErrorCategory.CONTENT_REJECTED,
     "invalid_payload", None),
    ("slack", httpx.Response(400, text="user_not_found"), ErrorCategory.CONFIGURATION,
     "user_not_found", None),
    ("slack", httpx.Response(403, text="invalid_token"), ErrorCategory.AUTH,
     "invalid_token", None),
    ("slack", httpx.Response(403, text="action_prohibited"), ErrorCategory.CONFIGURATION,
     "action_prohibited", None),
    ("slack", httpx.Response(404, text="no_service"), ErrorCategory.AUTH, "no_service", None),
    ("slack", httpx.Response(404, text="channel_not_found"), ErrorCategory.CONFIGURATION,
     "channel_not_found", None),
    ("slack", httpx.Response(410, text="channel_is_archived"), ErrorCategory.CONFIGURATION,
     "channel_is_archived", None),
    ("slack", httpx.Response(429, text="rate_limited", headers={"Retry-After": "30"}),
     ErrorCategory.RATE_LIMITED, "rate_limited", 30.0),
    ("slack", httpx.Response(500, text="rollup_error"), ErrorCategory.UNAVAILABLE,
     "rollup_error", None),
    ("slack", httpx.Response(400, text="<html>Bad Request</html>"),
     ErrorCategory.CONTENT_REJECTED, None, None),
    # Teams: status, a Workflows error code, or a connector's failure wrapped in 200
    ("teams", httpx.Response(400, text="Bad payload"), ErrorCategory.CONTENT_REJECTED,
     None, None),
    ("teams", httpx.Response(400, json={"error": {"code": "TriggerInputSchemaMismatch",
                                                  "message": "The input body is invalid."}}),
     ErrorCategory.CONTENT_REJECTED, "TriggerInputSchemaMismatch", None),
    ("teams", httpx.Response(429, headers={"Retry-After": "20"}, text="Too Many Requests"),
     ErrorCategory.RATE_LIMITED, None, 20.0),
    ("teams", httpx.Response(401, json={"error": {"code": "DirectApiAuthorizationRequired"}}),
     ErrorCategory.AUTH, "DirectApiAuthorizationRequired", None),
    ("teams", httpx.Response(404, text="Not Found"), ErrorCategory.CONFIGURATION, None, None),
    ("teams", httpx.Response(200, text=WRAPPED.format(status=429)), ErrorCategory.RATE_LIMITED,
     "http_429", None),
    ("teams", httpx.Response(200, text=WRAPPED.format(status=413)),
     ErrorCategory.PAYLOAD_TOO_LARGE, "http_413", None),
    ("teams", httpx.Response(200, text=WRAPPED.format(status=400)),
     ErrorCategory.CONTENT_REJECTED, "http_400", None),
    # Discord: status and JSON error code
    ("discord", httpx.Response(404, json={"message": "Unknown Webhook", "code": 10015}),
     ErrorCategory.CONFIGURATION, "10015", None),
    ("discord", httpx.Response(401, json={"message": "Invalid Webhook Token", "code": 50027}),
     ErrorCategory.AUTH, "50027", None),
    ("discord", httpx.Response(400, json={"message": "Cannot send an empty message",
                                          "code": 50006}),
     ErrorCategory.CONTENT_REJECTED, "50006", None),
    ("discord", httpx.Response(400, json={"message": "Invalid Form Body", "code": 50035}),
     ErrorCategory.CONTENT_REJECTED, "50035", None),
    ("discord", httpx.Response(429, json={"message": "You are being rate limited.",
                                          "retry_after": 2.5, "global": False}),
     ErrorCategory.RATE_LIMITED, None, 2.5),
    ("discord", httpx.Response(503, text="upstream connect error"), ErrorCategory.UNAVAILABLE,
     None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "answer", "category", "code", "retry_after"),
    ERRORS,
    ids=[f"{e[0]}-{e[1].status_code}-{e[3] or e[2].value}" for e in ERRORS],
)
def test_errors_are_mapped_and_never_show_the_url(
    name: str,
    answer: httpx.Response,
    category: ErrorCategory,
    code: str | None,
    retry_after: float | None,
) -> None:
    """Each documented error becomes its category, code and delay; no URL in the result."""
    result = send_once(ADAPTERS[name](), answer)
    assert not result.ok
    [attempt] = result.attempts
    assert attempt.provider == name
    assert attempt.error is not None
    assert attempt.error.category is category
    assert attempt.error.code == code
    assert attempt.error.retry_after == retry_after
    assert_hidden(*shown(result), attempt.error.message)


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_an_echoed_url_is_redacted_from_errors(name: str) -> None:
    """A proxy page that quotes the webhook URL shows it nowhere in the error."""
    provider = ADAPTERS[name]()
    target = TARGETS[name]
    page = f"<h1>404 Not Found</h1><p>POST {target} was not found; token {target[-30:]}</p>"
    request = provider.build_request(outbound())
    answer = httpx.Response(404, text=page, request=request)
    with pytest.raises(ProviderError) as caught:
        provider.parse_response(answer, outbound())
    error = caught.value
    assert error.category is ErrorCategory.CONFIGURATION
    assert "***" in str(error.raw)
    assert_hidden(str(error), repr(error), str(error.raw), str(error.code))


def test_anysend_logs_never_show_the_url(caplog: pytest.LogCaptureFixture) -> None:
    """A failing and a succeeding send log nothing under 'anysend' that names a webhook URL."""
    caplog.set_level(logging.DEBUG, logger="anysend")
    for name in ADAPTERS:
        send_once(ADAPTERS[name](), httpx.Response(500, text="down"))
        send_once(ADAPTERS[name](), httpx.Response(200, text="ok"))
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("anysend")]
    assert ours
    assert_hidden(*ours)


# -- the contract kit ------------------------------------------------------------------------------


class TestSlackContract(ProviderContract):
    """The contract kit run against the Slack adapter."""

    def make_provider(self) -> Slack:
        """A Slack adapter on the test webhook."""
        return slack(username="deploy-bot")

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """Slack's plain "ok"."""
        return httpx.Response(200, text="ok", request=request)

    def error_cases(self) -> list[ErrorCase]:
        """Slack's documented error strings."""
        cases = [
            (400, "invalid_payload", ErrorCategory.CONTENT_REJECTED),
            (403, "invalid_token", ErrorCategory.AUTH),
            (403, "action_prohibited", ErrorCategory.CONFIGURATION),
            (404, "no_service", ErrorCategory.AUTH),
            (404, "channel_not_found", ErrorCategory.CONFIGURATION),
            (410, "channel_is_archived", ErrorCategory.CONFIGURATION),
        ]
        return [
            ErrorCase(name=code, status=status, body=code, category=category, retryable=False)
            for status, code, category in cases
        ] + [
            ErrorCase(
                name="rate_limited",
                status=429,
                body="rate_limited",
                headers={"Retry-After": "30"},
                category=ErrorCategory.RATE_LIMITED,
                retryable=True,
                retry_after=30.0,
            )
        ]


class TestTeamsContract(ProviderContract):
    """The contract kit run against the Teams adapter."""

    def make_provider(self) -> Teams:
        """A Teams adapter on the test Workflows webhook."""
        return teams()

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """A workflow's 202 Accepted."""
        return httpx.Response(202, request=request)

    def error_cases(self) -> list[ErrorCase]:
        """Teams' statuses and a connector's wrapped failure."""
        return [
            ErrorCase(
                name="bad card",
                status=400,
                body={"error": {"code": "TriggerInputSchemaMismatch"}},
                category=ErrorCategory.CONTENT_REJECTED,
                retryable=False,
            ),
            ErrorCase(
                name="throttled",
                status=429,
                headers={"Retry-After": "20"},
                category=ErrorCategory.RATE_LIMITED,
                retryable=True,
                retry_after=20.0,
            ),
            ErrorCase(
                name="workflow deleted",
                status=404,
                category=ErrorCategory.CONFIGURATION,
                retryable=False,
            ),
            ErrorCase(
                name="connector wraps a 429 in 200",
                status=200,
                body=WRAPPED.format(status=429),
                category=ErrorCategory.RATE_LIMITED,
                retryable=True,
            ),
        ]


class TestDiscordContract(ProviderContract):
    """The contract kit run against the Discord adapter."""

    expected_provider_message_id = "1180000000000000001"

    def make_provider(self) -> Discord:
        """A Discord adapter on the test webhook."""
        return discord(username="Deploy bot")

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """The created message, as answered with wait=true."""
        return httpx.Response(200, json=DISCORD_MESSAGE, request=request)

    def error_cases(self) -> list[ErrorCase]:
        """Discord's JSON error codes and its rate limit."""
        return [
            ErrorCase(
                name="Unknown Webhook",
                status=404,
                body={"message": "Unknown Webhook", "code": 10015},
                category=ErrorCategory.CONFIGURATION,
                retryable=False,
            ),
            ErrorCase(
                name="Invalid Webhook Token",
                status=401,
                body={"message": "Invalid Webhook Token", "code": 50027},
                category=ErrorCategory.AUTH,
                retryable=False,
            ),
            ErrorCase(
                name="empty message",
                status=400,
                body={"message": "Cannot send an empty message", "code": 50006},
                category=ErrorCategory.CONTENT_REJECTED,
                retryable=False,
            ),
            ErrorCase(
                name="rate limited, delay in the body",
                status=429,
                body={"message": "You are being rate limited.", "retry_after": 1.5},
                category=ErrorCategory.RATE_LIMITED,
                retryable=True,
                retry_after=1.5,
            ),
        ]
