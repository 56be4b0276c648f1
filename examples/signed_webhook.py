"""Post a signed JSON webhook to a CRM, and verify it on the receiving side.

A tiny HTTP server on 127.0.0.1 plays the CRM: it checks the signature with
``anysend.providers.webhook.verify_signature`` and answers 200 or 401.

    python examples/signed_webhook.py
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import anysend
from anysend.providers.webhook import Webhook, verify_signature

SECRET = "whsec_demo_only"
received: list[dict] = []


class CRM(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            verify_signature(body, dict(self.headers), SECRET)
        except anysend.WebhookVerificationError as exc:
            self.send_response(401)
            self.end_headers()
            self.wfile.write(str(exc).encode())
            return
        received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": "crm-ticket-1"}')

    def log_message(self, *args: object) -> None:  # keep the example's output short
        pass


server = HTTPServer(("127.0.0.1", 0), CRM)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_port}/hooks/anysend"

try:
    with anysend.Client([Webhook(url=url, secret=SECRET)]) as client:
        result = client.send(
            anysend.Message(text="Ann asked for a call back", subject="Call-back request"),
            to=anysend.Recipient(id="user-42", email="ann@example.com"),
            via=["webhook"],
        )
    bad = Webhook(url=url, secret="not-the-secret")
    with anysend.Client([bad]) as client:
        forged = client.send(anysend.Message(text="forged"), to={"id": "x"}, via=["webhook"])
finally:
    server.shutdown()
    server.server_close()

print(f"signed: {result.status.value}, CRM id {result.provider_message_id}")
print(f"CRM received: {received[0]['subject']!r} for {received[0]['recipient']}")
print(
    f"wrong secret: {forged.status.value} ({forged.error.category.value if forged.error else ''})"
)
assert result.ok
assert not forged.ok
