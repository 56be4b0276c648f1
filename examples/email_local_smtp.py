"""Send a rich email (HTML, text, attachment, inline logo) through a local SMTP server.

aiosmtpd (in the `demo` extra) plays the mail server on 127.0.0.1; the SMTP adapter is the
real one.

    python examples/email_local_smtp.py
"""

import socket
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller

import anysend
from anysend.providers.smtp import SMTP


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(envelope.original_content or envelope.content)
        return "250 2.0.0 Ok: queued"


with socket.socket() as probe:  # a free port on 127.0.0.1
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
inbox = Inbox()
server = Controller(inbox, hostname="127.0.0.1", port=port)
server.start()
try:
    smtp = SMTP(host="127.0.0.1", port=port, security="none", sender="Shop <shop@example.com>")
    message = anysend.Message(
        subject="Your invoice",
        html='<img src="cid:logo.png"><p>Thanks for your order, <b>Ann</b>!</p>',
        attachments=(
            anysend.Attachment(filename="invoice.pdf", content=b"%PDF-1.7 ..."),
            anysend.Attachment(filename="logo.png", content=b"\x89PNG...", inline=True),
        ),
        reply_to=("help@example.com",),
        headers={"X-Order": "42"},
    )
    with anysend.Client([smtp]) as client:
        result = client.send(message, to=anysend.Recipient(email="ann@example.com", name="Ann"))
finally:
    server.stop()

mail = message_from_bytes(inbox.messages[0], policy=policy.default)
print(f"status: {result.status.value}, Message-ID {result.provider_message_id}")
print(f"From: {mail['From']} To: {mail['To']} Subject: {mail['Subject']}")
print("parts:", [part.get_content_type() for part in mail.walk()])
print("text part:", mail.get_body(preferencelist=("plain",)).get_content().strip())
assert [a.get_filename() for a in mail.iter_attachments()] == ["invoice.pdf"]
