"""Every SMTP reply maillist gives of its own, in one table: the parser, the parse pool, the
handler, the session layer and the delivery workers take their texts from here, each with its
RFC 3463 enhanced status code. (aiosmtpd's own protocol replies are given enhanced codes by
smtp/server.py's _REWRITE.) Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    status: str  # RFC 3463 enhanced status code
    text: str  # a str.format template

    def __call__(self, **values: object) -> str:
        return f"{self.code} {self.status} {self.text.format(**values)}"

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500


# Sessions
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
QUEUED = Reply(250, "2.0.0", "<{message_id}> queued as {row}{note}")
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections, try again later")
TOO_MANY_FROM_CLIENT = Reply(
    421, "4.7.0", "Too many connections from your address, try again later"
)
IDLE_TIMEOUT = Reply(421, "4.4.2", "Idle timeout, closing connection")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, try again later")
MAKING_ROOM = Reply(421, "4.7.0", "Too many sessions from your address: closing an idle one")
SESSION_TIMEOUT = Reply(421, "4.4.2", "Session time limit exceeded, closing connection")

# Recipients
NO_SUCH_LIST = Reply(550, "5.1.1", "<{rcpt}>: Recipient address rejected: no such list here")
NOT_A_LIST_ADDRESS = Reply(550, "5.1.1", "<{rcpt}>: Recipient address rejected: not a list address")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients (limit {limit})")
LOOKUP_FAILED = Reply(451, "4.3.0", "Temporary failure looking up the recipient")
TOO_BIG_FOR_LIST = Reply(552, "5.3.4", "Message too big for {list} (limit {limit} bytes)")

# Message data, before any parser runs
BARE_LF = Reply(550, "5.5.2", "Message refused: bare <LF> in message data")
BARE_CR = Reply(550, "5.5.2", "Message refused: bare <CR> in message data")
HEADER_TOO_LARGE = Reply(552, "5.3.4", "Message header too large (limit {limit} bytes)")
TOO_MANY_FIELDS = Reply(552, "5.3.4", "Too many header fields (limit {limit})")
MALFORMED_HEADER = Reply(
    554, "5.6.0", "Message header is malformed: line {number} is not a header field"
)
FIELD_TOO_LONG = Reply(554, "5.6.0", "{field} header field too long (limit {limit} octets)")
TOO_MANY_MULTIPARTS = Reply(554, "5.6.0", "Message structure too complex (too many multiparts)")
TOO_MANY_BOUNDARIES = Reply(554, "5.6.0", "Message structure too complex (too many MIME parts)")

# Parsing
UNPARSABLE = Reply(554, "5.6.0", "Message could not be parsed: {error}")
TOO_MANY_PARTS = Reply(554, "5.6.0", "Too many MIME parts (limit {limit})")
TOO_DEEP = Reply(554, "5.6.0", "MIME nesting too deep (limit {limit})")
NO_HEADER = Reply(554, "5.6.0", "Message has no header")
PARSE_TIME_LIMIT = Reply(554, "5.6.0", "Message too complex to process (parse time limit exceeded)")
PARSERS_BUSY = Reply(451, "4.3.2", "Too busy to parse the message now, please try again")
PARSER_FAILED = Reply(451, "4.3.0", "Temporary failure parsing the message")

# Storing
UNAUTHENTICATED = Reply(
    550, "5.7.1", "<{message_id}> refused: {domain} publishes DMARC and this post fails it"
)
STORE_FAILED = Reply(451, "4.3.0", "Temporary failure storing the message, please try again")

# Delivery (recorded against a batch, as a relay's reply would be)
SEND_FAILED = Reply(451, "4.3.0", "maillist could not send this batch: {error}")
