"""The sandbox's own credentials: the accounts, tokens and keys its providers accept.

Every sandbox makes a fresh set (strings from its seeded random source, real RSA and P-256
keys from ``cryptography``). :func:`adapters` builds the real adapters configured with them,
and :func:`environment` the same as ``ANYSEND_*`` variables.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

if TYPE_CHECKING:
    from anysend.providers import Provider

__all__ = ["NAMES", "Credentials", "adapters", "environment"]

#: The providers the sandbox speaks, in the order :func:`adapters` lists them (WhatsApp
#: before Twilio, so that the ``whatsapp`` channel goes to the Cloud API first).
NAMES = ("whatsapp", "twilio", "sendgrid", "mailgun", "smtp", "telegram", "fcm", "webpush")
#: The SMS sender (Twilio's "magic" test number that always sends).
TWILIO_SENDER = "+15005550006"
EMAIL_SENDER = "Sandbox <sandbox@example.com>"
MAILGUN_DOMAIN = "mg.sandbox.test"
WHATSAPP_NUMBER = "15550001234"
FCM_PROJECT = "anysend-sandbox"
BOT_USERNAME = "anysend_sandbox_bot"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def _pem_private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


@dataclass
class Credentials:
    """Everything the sandbox's providers authenticate and sign with.

    Attributes:
        base: the sandbox URL the credentials point at (the FCM token URI lives there).
        webhook_url: where callbacks go, if anywhere.
    """

    base: str
    webhook_url: str | None
    twilio_sid: str
    twilio_token: str
    sendgrid_key: str
    sendgrid_signer: ec.EllipticCurvePrivateKey
    mailgun_key: str
    mailgun_signing_key: str
    whatsapp_token: str
    whatsapp_phone_id: str
    whatsapp_secret: str
    whatsapp_verify: str
    telegram_bot_id: int
    telegram_token: str
    telegram_secret: str
    fcm_key: rsa.RSAPrivateKey
    fcm_key_id: str
    vapid_key: ec.EllipticCurvePrivateKey

    @classmethod
    def make(cls, rng: random.Random, base: str, webhook_url: str | None) -> Credentials:
        """A fresh set: strings from ``rng``, keys from the operating system's randomness."""

        def pick(alphabet: str, size: int) -> str:
            return "".join(rng.choice(alphabet) for _ in range(size))

        hexdigits = "0123456789abcdef"
        letters = string.ascii_letters + string.digits
        bot_id = rng.randrange(10**9, 10**10)
        return cls(
            base=base,
            webhook_url=webhook_url,
            twilio_sid="AC" + pick(hexdigits, 32),
            twilio_token=pick(hexdigits, 32),
            sendgrid_key=f"SG.{pick(letters, 22)}.{pick(letters, 43)}",
            sendgrid_signer=ec.generate_private_key(ec.SECP256R1()),
            mailgun_key=f"key-{pick(hexdigits, 32)}",
            mailgun_signing_key=pick(hexdigits, 32),
            whatsapp_token="EAAG" + pick(letters, 60),
            whatsapp_phone_id=str(rng.randrange(10**14, 10**15)),
            whatsapp_secret=pick(hexdigits, 32),
            whatsapp_verify=pick(letters, 24),
            telegram_bot_id=bot_id,
            telegram_token=f"{bot_id}:{pick(letters + '_-', 35)}",
            telegram_secret=pick(letters, 32),
            fcm_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
            fcm_key_id=pick(hexdigits, 40),
            vapid_key=ec.generate_private_key(ec.SECP256R1()),
        )

    # -- derived values --------------------------------------------------------------------------

    @property
    def token_uri(self) -> str:
        """The OAuth token endpoint in the FCM service account (HTTPS, on the sandbox's host).

        An ``https`` URL, as the adapter requires; the client's ``sandbox=`` setting sends it
        to ``{sandbox}/fcm/token`` over plain HTTP.
        """
        return "https" + self.base[self.base.index(":") :] + "/token"

    @property
    def client_email(self) -> str:
        """The service account's email."""
        return f"anysend-sandbox@{FCM_PROJECT}.iam.gserviceaccount.com"

    def service_account(self) -> dict[str, str]:
        """The FCM service-account key file, as a dict (its real fields)."""
        return {
            "type": "service_account",
            "project_id": FCM_PROJECT,
            "private_key_id": self.fcm_key_id,
            "private_key": _pem_private(self.fcm_key),
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
        }

    def sendgrid_public_key(self) -> str:
        """The Signed Event Webhook verification key, base64 DER as SendGrid shows it."""
        der = self.sendgrid_signer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode("ascii")

    def vapid_private(self) -> str:
        """The VAPID private key as base64url of its 32-byte scalar."""
        scalar = self.vapid_key.private_numbers().private_value.to_bytes(32, "big")
        return base64.urlsafe_b64encode(scalar).rstrip(b"=").decode("ascii")

    def vapid_public(self) -> str:
        """The VAPID public key (the ``applicationServerKey``), base64url."""
        raw = self.vapid_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def settings(self, smtp_port: int | None) -> dict[str, dict[str, Any]]:
        """Each provider's settings, by provider name (SMTP only with an SMTP port)."""
        hook = self.webhook_url.rstrip("/") if self.webhook_url else None
        found: dict[str, dict[str, Any]] = {
            "whatsapp": {
                "access_token": self.whatsapp_token,
                "phone_number_id": self.whatsapp_phone_id,
                "app_secret": self.whatsapp_secret,
                "verify_token": self.whatsapp_verify,
            },
            "twilio": {
                "account_sid": self.twilio_sid,
                "auth_token": self.twilio_token,
                "sender": TWILIO_SENDER,
                "whatsapp_sender": "+" + WHATSAPP_NUMBER,
            },
            "sendgrid": {
                "api_key": self.sendgrid_key,
                "sender": EMAIL_SENDER,
                "webhook_public_key": self.sendgrid_public_key(),
            },
            "mailgun": {
                "api_key": self.mailgun_key,
                "domain": MAILGUN_DOMAIN,
                "sender": f"Sandbox <sandbox@{MAILGUN_DOMAIN}>",
                "webhook_signing_key": self.mailgun_signing_key,
            },
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "none",
                "sender": EMAIL_SENDER,
            },
            "telegram": {
                "bot_token": self.telegram_token,
                "secret_token": self.telegram_secret,
                "bot_username": BOT_USERNAME,
            },
            "fcm": {"service_account": json.dumps(self.service_account())},
            "webpush": {
                "vapid_private_key": self.vapid_private(),
                "vapid_subject": "mailto:sandbox@example.com",
            },
        }
        if hook is not None:
            found["twilio"]["status_callback_url"] = f"{hook}/twilio"
        if smtp_port is None:
            del found["smtp"]
        return found


def adapters(
    credentials: Credentials, smtp_port: int | None, names: tuple[str, ...]
) -> list[Provider]:
    """The real adapters, configured with the sandbox's credentials (``names`` picks some)."""
    from anysend.providers import load

    settings = credentials.settings(smtp_port)
    chosen = [n for n in NAMES if n in settings and (not names or n in names)]
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        from anysend import ConfigurationError

        raise ConfigurationError(f"the sandbox has no provider {unknown[0]!r} (it has {NAMES})")
    return [load(name)(**settings[name]) for name in chosen]


def environment(credentials: Credentials, smtp_port: int | None) -> dict[str, str]:
    """The ``ANYSEND_*`` variables that configure the same providers (for ``from_env``)."""
    settings = credentials.settings(smtp_port)
    env = {
        "ANYSEND_SANDBOX_URL": credentials.base,
        "ANYSEND_PROVIDERS": " || ".join(f"{name}://" for name in settings),
    }
    for name, fields in settings.items():
        for key, value in fields.items():
            if value is not None:
                env[f"ANYSEND_{name.upper()}_{key.upper()}"] = str(value)
    return env
