"""Order updates across email, SMS and push, with the statuses coming back as callbacks.

Two orders, four updates each (confirmed, shipped, out for delivery, delivered), every one
on the channels that suit it: the confirmation by email, "shipped" as a push to every
device (web push in the browser, FCM on the phone) falling back to SMS, "out for delivery"
by SMS. Along the way:

- Ann's old tablet was unregistered: FCM answers ``UNREGISTERED``, the client calls the
  ``on_invalid_address`` hook and the store skips that token from then on;
- Carol's mailbox does not exist: SendGrid accepts the email, then its signed ``bounce``
  callback marks the address invalid, so her later updates go by SMS;
- Carol has no push device, so "shipped" falls back to SMS for her.

The real SendGrid, Twilio, FCM and Web Push adapters send to the anysend sandbox, started
in this script. It posts delivery, open and bounce callbacks, signed as SendGrid and
Twilio sign them, to the shop's endpoint (``anysend.testing.WebhookServer``), which
verifies them into the store. Push services report nothing after accepting a push, so a
push stays ``accepted`` in the store (the sandbox's inbox shows it delivered to the device).
At the end, each customer's history and the per-channel report come from the store.

The days pass on a shared ``anysend.testing.VirtualClock``: ``sandbox.run_due()`` posts the
callbacks that fell due, so the script takes about a second.

    pip install "anysend[sandbox]"
    python examples/order_updates.py
"""

from datetime import datetime, timedelta, timezone

import anysend
from anysend import Message, PushTarget
from anysend.sandbox import Sandbox
from anysend.testing import VirtualClock, WebhookServer

TEMPLATES = {
    "order/email.subject.txt": "Order {{ order }}: {{ headline }}",
    "order/email.txt": "Hi {{ name }},\n\n{{ details }}\n\n"
    "Your order: https://shop.example.com/orders/{{ order }}",
    "order/sms.txt": "Order {{ order }}: {{ headline }}. {{ details }}",
    "order/push.title.txt": "Order {{ order }}: {{ headline }}",
    "order/push.body.txt": "{{ details }}",
}
START = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)  # a Monday
UPDATES = [  # when, headline, details, channels
    (START, "confirmed", "Thank you! We are packing it.", ["email", "sms"]),
    (START.replace(day=24, hour=8), "shipped", "It is on its way.", ["push", "sms"]),
    (START.replace(day=25, hour=7), "out for delivery", "It comes 12-14 today.", ["sms"]),
    (START.replace(day=25, hour=13), "delivered", "Enjoy it!", ["push", "email", "sms"]),
]


def dead_address(attempt: anysend.Attempt) -> None:
    """The ``on_invalid_address`` hook: where the app would delete a dead push token."""
    print(f"  hook: {attempt.provider} says {attempt.address!r} is gone ({attempt.error.code})")


clock = VirtualClock(start=START)
with (
    WebhookServer() as hooks,  # the shop's endpoint: its URL is known at once
    Sandbox(webhook_url=hooks.url, clock=clock, seed=1, delivery_delay=30) as sandbox,
    anysend.Client(
        sandbox.providers("sendgrid", "twilio", "fcm", "webpush"),
        sandbox=sandbox.url,
        templates=TEMPLATES,
        store=":memory:",
        clock=clock,
        on_invalid_address=[dead_address],
    ) as client,
):
    hooks.attach(client)  # callbacks now reach the client's store
    ann = sandbox.person(
        "Ann",
        email="ann@example.com",
        phone="+48600100200",
        push=[
            sandbox.subscription("ann-laptop"),  # a browser's Web Push subscription
            PushTarget(kind="fcm", token="fcm-ann-phone"),
            PushTarget(kind="fcm", token="fcm-ann-old-tablet"),
        ],
    )
    carol = sandbox.person("Carol", email="carol@example.org", phone="+48600300400")
    sandbox.fail("fcm-ann-old-tablet", "unsubscribed")  # FCM: UNREGISTERED
    sandbox.fail("carol@example.org", "bounce")  # accepted, then a bounce callback
    client.profiles.upsert(ann.model_copy(update={"id": "ann"}))
    client.profiles.upsert(carol.model_copy(update={"id": "carol"}))
    orders = {"ann": "A-1042", "carol": "A-1043"}

    for when, headline, details, via in UPDATES:
        clock.advance(when - clock.now())
        print(f"{clock.now():%a %H:%M} {headline}")
        for person, order in orders.items():
            data = {"name": person.title(), "order": order, "headline": headline}
            message = Message(template="order", data={**data, "details": details})
            result = client.send(message, to=person, via=via)
            sent = [a for a in result.attempts if a.outcome.value == "sent"]
            where = ", ".join(f"{a.channel.value} ({a.provider})" for a in sent)
            skips = [a for a in result.attempts if a.skip_reason]
            skipped = ", ".join(f"{a.channel.value}: {a.skip_reason.value}" for a in skips)
            print(f"  {person:5} {where}" + (f"; skipped {skipped}" if skipped else ""))
        clock.advance(timedelta(seconds=30))
        sandbox.run_due()  # deliveries and bounces: signed callbacks into the store
        clock.advance(timedelta(seconds=30))
        sandbox.run_due()  # some emails are opened

    for person in orders:
        print(f"{person.title()}'s history (from the store):")
        for entry in client.history(person):
            what = entry.status or entry.event
            print(
                f"  {entry.at:%a %H:%M:%S} {entry.kind:7} "
                f"{entry.channel.value if entry.channel else '-':6} {entry.provider or '-':9} "
                f"{what.value if what else '-'} {entry.reason or ''}".rstrip()
            )

    print("Per channel (from the store):")
    report = client.report(since=START)
    print("  channel  sent  delivered  opened  bounced")
    for row in report.rows:
        print(
            f"  {row.key:7} {row.sent:5} {row.delivered:10} {row.opened:7} "
            f"{row.failed_after_sent:8}"
        )
    pushes = [m for m in sandbox.messages() if m.channel == "push"]
    print(f"The sandbox's inbox: {len(pushes)} pushes shown on Ann's devices")

    assert all(c["status"] == 200 for c in sandbox.callbacks())
    assert report.row("email").failed_after_sent == 1  # Carol's bounce
    assert report.row("sms").delivered == report.row("sms").sent
