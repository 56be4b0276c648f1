"""Abandoned-cart reminders that stop as soon as the customer buys.

Three customers leave a full cart on Monday evening. Each gets a flow of reminders: an
email after an hour, a push (or an SMS, for someone without a push device) a day later,
and a last email with a discount two days after that. The flow lists ``cancel_on=
["purchase"]``: when the shop's checkout records the business event with
``client.record_event(customer, "purchase")``, whatever is still pending in that
customer's run is canceled, at once and in the store (so a worker in another process sees
it too).

- Carol buys within the hour: she gets nothing.
- Ann buys on Tuesday morning, after the first email: the rest is canceled.
- Bob never buys: he gets all three reminders.

The real SendGrid, Twilio and Web Push adapters send to the anysend sandbox, started in
this script, whose inbox shows what each customer received. The four days pass on an
``anysend.testing.VirtualClock``; ``client.run_due()`` runs the steps that are due, as
``anysend worker`` would.

    pip install "anysend[sandbox]"
    python examples/cart_reminders.py
"""

from datetime import datetime, timedelta, timezone

import anysend
from anysend import Flow, Step
from anysend.sandbox import Sandbox
from anysend.testing import VirtualClock

TEMPLATES = {
    "cart_reminder/email.subject.txt": "{{ name }}, your cart is waiting",
    "cart_reminder/email.txt": "You left {{ items | join(', ') }} in your cart.",
    "cart_nudge/push.title.txt": "Still thinking about it?",
    "cart_nudge/push.body.txt": "{{ items | join(', ') }}: your cart is saved",
    "cart_nudge/sms.txt": "{{ name }}, {{ items | join(', ') }} is still in your cart",
    "cart_discount/email.subject.txt": "10% off your cart, {{ name }}",
    "cart_discount/email.txt": "Use code CART10 for 10% off {{ items | join(', ') }}.",
}
CART_REMINDERS = Flow(
    name="cart-reminders",
    cancel_on=["purchase"],  # client.record_event(customer, "purchase") stops the run
    steps=[
        Step(via="email", template="cart_reminder", delay=timedelta(hours=1)),
        Step(via=["push", "sms"], template="cart_nudge", delay=timedelta(days=1)),
        Step(via="email", template="cart_discount", delay=timedelta(days=2)),
    ],
)
MONDAY = datetime(2026, 11, 23, 18, 0, tzinfo=timezone.utc)

clock = VirtualClock(start=MONDAY)
with (
    Sandbox(clock=clock, seed=4) as sandbox,
    anysend.Client(
        sandbox.providers("sendgrid", "twilio", "webpush"),
        sandbox=sandbox.url,
        templates=TEMPLATES,
        store=":memory:",
        clock=clock,
    ) as client,
):
    customers = {
        "ann": sandbox.person("Ann", email="ann@example.com", phone="+48600100200"),
        "bob": sandbox.person(
            "Bob", email="bob@example.com", push=sandbox.subscription("bob-laptop")
        ),
        "carol": sandbox.person("Carol", email="carol@example.com", phone="+48600300400"),
    }
    carts = {"ann": ["Trail Runner 2"], "bob": ["Rain Jacket", "Wool Socks"], "carol": ["Cap"]}
    runs = {}
    for key, person in customers.items():
        client.profiles.upsert(person.model_copy(update={"id": key}))
        data = {"name": person.name, "items": carts[key]}
        runs[key] = client.start(CART_REMINDERS, to=key, data=data, key=f"cart:{key}")
    print(f"{clock.now():%a %H:%M} three carts abandoned")

    def at(when: datetime, purchase: str | None = None) -> None:
        """Move the clock to ``when``, record a purchase if any, run what is due."""
        clock.advance(when - clock.now())
        if purchase is not None:
            canceled = client.record_event(purchase, "purchase", {"cart": carts[purchase]})
            print(f"{when:%a %H:%M} {purchase} buys: {canceled} run canceled")
        before = len(sandbox.messages())
        client.run_due()
        for message in sandbox.messages()[before:]:
            what = message.subject or message.title or message.text
            print(f"{when:%a %H:%M} {message.person} gets {message.channel}: {what!r}")

    at(MONDAY + timedelta(minutes=30), purchase="carol")
    at(MONDAY + timedelta(hours=1))
    at(MONDAY + timedelta(hours=16), purchase="ann")
    at(MONDAY + timedelta(days=1, hours=1))
    at(MONDAY + timedelta(days=3, hours=1))

    print("The runs, step by step:")
    for key, run_id in runs.items():
        states = [step.state.value for step in client.store.run_steps(run_id)]
        received = len(sandbox.messages(to=customers[key].name))
        print(f"  {key:5} {', '.join(states)} ({received} received)")

    assert len(sandbox.messages(to="Carol")) == 0
    assert len(sandbox.messages(to="Ann")) == 1
    assert len(sandbox.messages(to="Bob")) == 3
