"""Back in stock: an email in each customer's language, then an SMS if it was not opened.

The shop tells four customers that the trail runner is back in their size. The email goes
out in their locale (English, Polish, German); if it is not opened within three days, an
SMS with a discount code follows (a flow with a ``NotOpened`` step).

Everything runs against the anysend sandbox, started inside this script: the real SendGrid
and Twilio adapters send to it, and it posts their delivery and open callbacks, signed as
SendGrid and Twilio sign them, to the shop's webhook endpoint (``anysend.testing.WebhookServer``
serving ``anysend.wsgi.WebhookApp`` on 127.0.0.1), which verifies them into the store.

Three days pass in a fraction of a second: the sandbox and the client share one
``anysend.testing.VirtualClock``. ``clock.advance()`` moves time; ``sandbox.run_due()`` posts
the callbacks that fell due (deliveries two minutes after a send, opens two minutes later)
and ``client.run_due()`` runs the flow steps that are due, as ``anysend worker`` would. With
a real clock the same code runs in real time. Who opens the email is the sandbox's seeded
``read_probability``: the same seed, the same story.

    pip install "anysend[sandbox]"
    python examples/back_in_stock.py
"""

from datetime import datetime, timedelta, timezone

import anysend
from anysend import Flow, NotOpened, Step
from anysend.sandbox import Sandbox
from anysend.testing import VirtualClock, WebhookServer

TEMPLATES = {
    "back_in_stock/email.subject.txt": "Your size is back: {{ product }} in {{ size }}",
    "back_in_stock/email.txt": "Good news, {{ name }}: {{ product }} in size {{ size }} is back.",
    "back_in_stock/pl/email.subject.txt": "Twój rozmiar wrócił: {{ product }}, {{ size }}",
    "back_in_stock/pl/email.txt": "Dobra wiadomość, {{ name }}: {{ product }} w rozmiarze "
    "{{ size }} znów jest w sklepie.",
    "back_in_stock/de/email.subject.txt": "Deine Größe ist zurück: {{ product }} in {{ size }}",
    "back_in_stock/de/email.txt": "Gute Nachricht, {{ name }}: {{ product }} in Größe {{ size }} "
    "ist wieder da.",
    "discount/sms.txt": "{{ product }} in {{ size }} is back: 10% off with code {{ code }}",
    "discount/pl/sms.txt": "{{ product }} w rozmiarze {{ size }}: 10% taniej z kodem {{ code }}",
    "discount/de/sms.txt": "{{ product }} in {{ size }}: 10% Rabatt mit dem Code {{ code }}",
}
CUSTOMERS = [  # id, name, email, phone, locale, size
    ("ann", "Ann", "ann@example.com", "+447911123456", "en-GB", "38"),
    ("ola", "Ola", "ola@example.pl", "+48600100200", "pl-PL", "40"),
    ("jonas", "Jonas", "jonas@example.de", "+4915112345678", "de-DE", "44"),
    ("ben", "Ben", "ben@example.com", "+447911123457", "en-GB", "42"),
]
BACK_IN_STOCK = Flow(
    name="back-in-stock",
    cancel_on=["purchase"],  # client.record_event(id, "purchase") stops a pending SMS
    steps=[
        Step(via="email", template="back_in_stock"),
        Step(via="sms", template="discount", when=NotOpened(within=timedelta(days=3))),
    ],
)


clock = VirtualClock(start=datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc))
with (
    WebhookServer() as hooks,  # the shop's endpoint: its URL is known at once
    Sandbox(webhook_url=hooks.url, clock=clock, seed=3, delivery_delay=120) as sandbox,
    anysend.Client(
        sandbox.providers("sendgrid", "twilio"),
        sandbox=sandbox.url,  # every adapter's requests go to the sandbox
        templates=TEMPLATES,
        store=":memory:",
        clock=clock,
    ) as client,
):
    hooks.attach(client)  # callbacks now reach the client's store

    def let_pass(delta: timedelta) -> None:
        """Let time pass: callbacks that fell due reach the store, then due steps run."""
        clock.advance(delta)
        sandbox.run_due()
        client.run_due()

    runs = {}
    for key, name, email, phone, locale, size in CUSTOMERS:
        person = sandbox.person(name, email=email, phone=phone)  # groups the sandbox inbox
        client.profiles.upsert(person.model_copy(update={"id": key, "locale": locale}))
        data = {"name": name, "product": "Trail Runner 2", "size": size, "code": "BACK10"}
        runs[key] = client.start(BACK_IN_STOCK, to=key, data=data, key=f"restock:{key}")

    let_pass(timedelta(0))  # the emails go now
    let_pass(timedelta(minutes=2))  # delivered
    let_pass(timedelta(minutes=2))  # some are opened
    let_pass(timedelta(days=3) - timedelta(minutes=4))  # day three: the SMS steps are due
    let_pass(timedelta(minutes=2))  # the SMS are delivered

    print("Monday 09:00: 'your size is back' emails, each in the customer's language")
    for _key, name, email, _phone, _locale, _size in CUSTOMERS:
        [mail] = sandbox.messages(to=email)  # what the sandbox's inbox shows
        print(f"  {name:6} {mail.subject!r}: {mail.status}")
    print("Thursday 09:00: an SMS to everyone who had not opened it")
    texted = []
    for key, name, _email, phone, _locale, _size in CUSTOMERS:
        for sms in sandbox.messages(to=phone):
            texted.append(key)
            print(f"  {name:6} {sms.text!r} ({sms.segments} segment): {sms.status}")
        if key not in texted:
            steps = ", ".join(step.state.value for step in client.store.run_steps(runs[key]))
            print(f"  {name:6} no SMS: the email was opened (steps: {steps})")

    print("The store's view, from the signed callbacks:")
    report = client.report(since=clock.now() - timedelta(days=4))
    for row in report.rows:
        opened = f", opened {row.opened}" if row.key == "email" else ""
        print(f"  {row.key:6} sent {row.sent}, delivered {row.delivered}{opened}")
    callbacks = sandbox.callbacks()
    print(f"  {len(callbacks)} callbacks, answered {sorted({c['status'] for c in callbacks})}")

    assert 0 < len(texted) < len(CUSTOMERS), "the seed gives both outcomes"
    assert all(c["status"] == 200 for c in callbacks)
    assert report.row("email").opened == len(CUSTOMERS) - len(texted)
    assert report.row("sms").delivered == len(texted)
