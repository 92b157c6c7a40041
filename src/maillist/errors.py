"""Domain errors. Each edge (CLI, SMTP) maps them to its own answer once."""


class MaillistError(Exception):
    """Base of every error that carries a message meant for a person."""


class BadAddress(MaillistError):
    pass


class UnknownList(MaillistError):
    pass


class DuplicateList(MaillistError):
    pass


class UnknownMember(MaillistError):
    pass


class AlreadyMember(MaillistError):
    pass


class UnknownPerson(MaillistError):
    pass


class BadgeError(MaillistError):
    pass


class BadOption(MaillistError):
    pass


class BadInput(MaillistError):
    """A file or value given by the admin that cannot be used as it is."""


class StoreBusy(MaillistError):
    """Another process held the database's write lock for longer than we wait."""


class StoreError(MaillistError):
    """The database cannot be opened, is too new, or is damaged."""


class MessageRefused(MaillistError):
    """A message that will not be stored; the text is the full SMTP reply ("5xx x.y.z text")."""


class UnknownHeld(MaillistError):
    pass


class BadToken(MaillistError):
    """A token that is malformed, unknown, expired, used, or not for this list and action."""


class AlreadyDelivered(MaillistError):
    """A held post cannot be approved: a post with its Message-ID was delivered already."""


class StoreTimeout(MaillistError):
    """A statement stopped at its time budget (engine.time_limit)."""


class Unavailable(MaillistError):
    """What was asked for exists but cannot be shown now (past its time budget)."""


class NotFound(MaillistError):
    """Nothing the asker may see here (an unknown list, thread or post, or an archive that is off)."""


class SignInRequired(MaillistError):
    """A private archive: its members sign in by email first."""


class Confusable(MaillistError):
    """An address that could pass for another person's (Unicode TR 39)."""


class StoreConflict(StoreError):
    """Another process changed the same rows at the same moment (PostgreSQL): redo the work."""
