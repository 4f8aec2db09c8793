"""Hand one message to an SMTP server: implicit TLS or STARTTLS, optional login, certificate checked.

Every failure (refused recipient or sender, a 4xx/5xx reply to DATA, a dropped connection, a TLS or
login error) becomes one `DeliveryError`; the caller logs it and the next run retries.
"""

from __future__ import annotations

import smtplib
import ssl
from email.utils import parseaddr

from ingest.errors import DeliveryError as DeliveryError  # re-exported: oncolit.delivery.smtp
from oncolit.delivery.settings import SmtpSettings


def _tls_context(cfg: SmtpSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)


def send(cfg: SmtpSettings, message: bytes, recipient: str) -> None:
    """Deliver `message` (RFC 5322 bytes) to `recipient`; raises `DeliveryError` unless accepted."""
    sender = parseaddr(cfg.sender)[1] or cfg.sender
    try:
        if cfg.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout,
                                                   context=_tls_context(cfg))
        else:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        with client:
            client.ehlo()
            if cfg.starttls and not cfg.ssl:
                client.starttls(context=_tls_context(cfg))
                client.ehlo()
            if cfg.username:
                client.login(cfg.username, cfg.password or "")
            refused = client.sendmail(sender, [recipient], message)
            if refused:  # only possible with several recipients; kept for completeness
                raise DeliveryError(f"the server refused {', '.join(refused)}")
    except smtplib.SMTPRecipientsRefused as exc:
        codes = "; ".join(f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items())
        raise DeliveryError(f"recipient refused by {cfg.host}:{cfg.port} ({codes})") from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"{cfg.host}:{cfg.port} answered {exc.smtp_code} {_text(exc.smtp_error)}") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"{cfg.host}:{cfg.port} does not support what the settings ask for ({exc}); "
                            "check smtp.starttls / smtp.username") from None
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        raise DeliveryError(f"cannot deliver through {cfg.host}:{cfg.port}: {exc}") from None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
