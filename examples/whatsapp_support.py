"""Two-way WhatsApp support: the customer writes back, the shop answers within 24 hours.

WhatsApp lets a business send free text to a person only within 24 hours of that person's
last message (the customer-service window); outside it, only an approved template gets
through. The support app below reads the window from the store: the customer's replies
arrive as signed webhooks, the receiver links them to her profile, and ``answer()`` sends
free text while the window is open and the template otherwise.

The real WhatsApp Cloud API adapter sends to the anysend sandbox, started in this script.
``sandbox.reply()`` plays the customer: it posts the inbound message as Meta would, signed
with the app secret, to the shop's endpoint (``anysend.testing.WebhookServer``), and
the sandbox reports each message delivered and read the same way. Time passes on a shared
``anysend.testing.VirtualClock``. The sandbox does not track the 24-hour window itself: at
the end, ``sandbox.fail(phone, "outside_window")`` acts out Meta's answer (error 131047) to
free text sent too late, and the client falls back to SMS.

    pip install "anysend[sandbox]"
    python examples/whatsapp_support.py
"""

from datetime import datetime, timedelta, timezone

import anysend
from anysend import Channel, ChatTemplate, Message
from anysend.sandbox import Sandbox
from anysend.testing import VirtualClock, WebhookServer

WINDOW = timedelta(hours=24)
PHONE = "+48600100200"


def last_inbound(client: anysend.Client, person: str) -> anysend.HistoryEntry | None:
    """The person's last WhatsApp message to the shop, as the receiver stored it."""
    inbound = [
        entry
        for entry in client.history(person)
        if entry.kind == "inbound" and entry.channel is Channel.WHATSAPP
    ]
    return inbound[-1] if inbound else None


def answer(
    client: anysend.Client, person: str, text: str, template: ChatTemplate
) -> anysend.SendResult:
    """Free text while the customer-service window is open; the template otherwise."""
    last = last_inbound(client, person)
    if last is not None and clock.now() - last.at < WINDOW:
        message = Message(text=text)
    else:
        message = Message(chat_template=template)
    return client.send(message, to=person, via="whatsapp").raise_for_status()


clock = VirtualClock(start=datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc))
with (
    WebhookServer() as hooks,  # the shop's endpoint: its URL is known at once
    Sandbox(
        webhook_url=hooks.url, clock=clock, seed=2, delivery_delay=5, read_probability=1.0
    ) as sandbox,
    anysend.Client(
        sandbox.providers("whatsapp", "twilio"),
        sandbox=sandbox.url,
        store=":memory:",
        clock=clock,
    ) as client,
):
    hooks.attach(client)  # callbacks now reach the client's store
    ann = sandbox.person("Ann", phone=PHONE).model_copy(update={"id": "ann"})
    client.profiles.upsert(ann)

    def wait(delta: timedelta) -> None:
        """Let ``delta`` pass; the callbacks that fall due meanwhile reach the store.

        The sandbox reports a message delivered 5 s after it took it and read 5 s later, each
        due from the moment the previous one ran: the first ten seconds pass in two steps.
        """
        step = timedelta(seconds=5)
        for _ in range(2):
            clock.advance(step)
            sandbox.run_due()
        clock.advance(delta - 2 * step)
        sandbox.run_due()

    def customer_writes(text: str) -> None:
        """Ann replies on WhatsApp: a signed webhook into the shop's receiver."""
        sandbox.reply(PHONE, text, provider="whatsapp")

    shipped = ChatTemplate(name="order_shipped", language="en", parameters=["Ann", "A-1042"])
    feedback = ChatTemplate(name="feedback_request", language="en", parameters=["Ann"])

    # Monday 09:00: the shop starts the conversation: only a template may do that.
    answer(client, "ann", "Your order A-1042 has shipped", shipped)
    wait(timedelta(minutes=20))
    customer_writes("Hi! Can it go to my office instead? I'm not home on Tuesday.")
    wait(timedelta(minutes=3))
    answer(client, "ann", "Sure, Ann! What is the office address?", shipped)
    wait(timedelta(minutes=2))
    customer_writes("ul. Prosta 20, Warsaw. Thanks!")
    wait(timedelta(minutes=1))
    answer(client, "ann", "Done: A-1042 now goes to ul. Prosta 20. Have a nice day!", shipped)
    wait(timedelta(minutes=10))

    # Tuesday 12:00, over 26 hours after Ann's last message: the window has closed.
    wait(timedelta(hours=26, minutes=24))
    answer(client, "ann", "How did we do?", feedback)
    wait(timedelta(minutes=10))

    print("Ann's phone (the sandbox's inbox):")
    for message in sandbox.messages(to="Ann"):
        who = "Ann " if message.direction == "inbound" else "Shop"
        print(f"  {message.created_at:%a %H:%M} {who} {message.text!r} [{message.status}]")

    print("Ann's history (the shop's store, filled by the signed webhooks):")
    for entry in client.history("ann"):
        what = entry.status.value if entry.status else ""
        channel = entry.channel.value if entry.channel else "-"
        line = f"  {entry.at:%a %H:%M} {channel:8} {entry.kind:8} {what:9} {entry.text or ''}"
        print(line.rstrip())

    # What if the app ignored the window? Meta refuses free text (error 131047); the
    # sandbox does not track the window, so the refusal is scripted here.
    sandbox.fail(PHONE, "outside_window", times=1)
    late = client.send(Message(text="Psst, a coupon!"), to="ann", via=["whatsapp", "sms"])
    print("Free text outside the window:")
    for attempt in late.attempts:
        error = attempt.error
        why = f"{error.category.value}, {error.reason.value}" if error and error.reason else ""
        line = f"  {attempt.channel.value:8} {attempt.provider:8} {attempt.outcome.value} {why}"
        print(line.rstrip())

    inbound = [entry for entry in client.history("ann") if entry.kind == "inbound"]
    assert len(inbound) == 2, "both replies reached the store through the webhook"
    assert late.channel is Channel.SMS
    assert all(callback["status"] == 200 for callback in sandbox.callbacks())
