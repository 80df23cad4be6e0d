"""The one seam every outgoing mail goes through: SMTP when configured, else a local outbox."""

from guichet.mail.mailer import Mail, Mailer, build_mailer

__all__ = ["Mail", "Mailer", "build_mailer"]
