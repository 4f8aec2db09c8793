"""E-mail digests: subscribers, periods, rendering (Markdown, HTML, text, JSON, .eml), SMTP delivery
and the send log. What goes into a digest is decided in `synthesis.digest`.

    run.run_digests(settings, catalog, now)   the scheduler step and `oncolit digest`
    subscribers                               add / list / remove, periods in the subscriber's time zone
    sendlog                                   one digest per subscriber and period, sent at most once
    render                                    templates/ (Jinja2) -> Markdown, HTML, text, JSON, MIME
    smtp                                      STARTTLS / TLS, login, every failure a DeliveryError
    settings                                  SmtpSettings, DigestSettings (sections of the one Settings)
"""
