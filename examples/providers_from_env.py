"""Configure providers from environment variables, as a deployment would.

python examples/providers_from_env.py
"""

import os

import anysend
from anysend.providers import to_url

# In production these come from your deployment; secrets can live in their own variables.
os.environ["ANYSEND_PROVIDERS"] = (
    "smtp://mail.example.com:587?from=shop@example.com || console://?channels=sms"
)
os.environ["ANYSEND_SMTP_USERNAME"] = "shop"
os.environ["ANYSEND_SMTP_PASSWORD"] = "s3cret-smtp-password"

with anysend.Client.from_env() as client:
    for name, provider in client.providers.items():
        print(f"{name:8} {to_url(provider)}")  # secrets print as ***
    # Only SMS is sent here (the SMTP host is not reachable from this example).
    result = client.send(anysend.Message(text="Hello from env"), to={"phone": "+48600700800"})

assert "s3cret" not in repr(client)
assert result.channel is anysend.Channel.SMS
