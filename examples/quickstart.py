"""Send one message over a channel chain with the console provider: no accounts needed.

python examples/quickstart.py
"""

import anysend
from anysend.providers.console import Console

with anysend.Client([Console(channels={"sms"})], default_region="PL") as client:
    result = client.send(
        anysend.Message(text="Your Sneakers are back in stock", subject="Back in stock"),
        to=anysend.Recipient(email="ann@example.com", phone="600 700 800"),
        via=["email", "sms"],  # no email provider is configured, so SMS carries it
    )

for attempt in result.attempts:
    print(f"{attempt.channel.value:6} {attempt.provider or '-':8} {attempt.outcome.value}")
result.raise_for_status()
print(f"sent by {result.channel.value} to {result.address}")
