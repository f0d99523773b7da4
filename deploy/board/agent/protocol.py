"""The board protocol: length-prefixed JSON headers, each optionally followed by JPEG bytes.

    | 4 bytes: header length (big-endian) | header: UTF-8 JSON | payload: header["jpeg"] bytes |

Every header carries the protocol version `v`; a reader refuses any other version with a
message that says what to do, so a studio never misreads an agent pushed by another release.
Message types: hello (agent -> host, first), result, end, error (agent -> host); stop, pause, resume,
step and thresholds (host -> agent).
Standard library only: this file runs on the board.
"""
import json
import struct

VERSION = 1
MAX_HEADER = 1 << 20  # a result header holds at most a few thousand boxes
MAX_PAYLOAD = 64 << 20  # one JPEG frame
_LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """The other side spoke something this side cannot read (wrong version, broken frame)."""


class ConnectionClosed(ProtocolError):
    """The stream ended between two messages (or inside one)."""


def encode(header: dict, payload: bytes = b"") -> bytes:
    """One message as bytes; the version and the payload length are filled in."""
    header = dict(header, v=VERSION, jpeg=len(payload))
    body = json.dumps(header, separators=(",", ":")).encode()
    return _LENGTH.pack(len(body)) + body + payload


def send(sock, header: dict, payload: bytes = b"") -> None:
    """Write one message to a socket (or an SSH channel): all of it or an exception."""
    sock.sendall(encode(header, payload))


def _read_exactly(sock, count: int) -> bytes:
    chunks, left = [], count
    while left:
        chunk = sock.recv(min(left, 1 << 16))
        if not chunk:
            raise ConnectionClosed("the connection closed" + (" inside a message" if left < count or chunks else ""))
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(sock):
    """Read one message: (header dict, payload bytes). Refuses another protocol version."""
    (size,) = _LENGTH.unpack(_read_exactly(sock, _LENGTH.size))
    if not 0 < size <= MAX_HEADER:
        raise ProtocolError(f"a message header of {size} bytes: this is not the studio's board protocol")
    try:
        header = json.loads(_read_exactly(sock, size).decode())
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("a message header that is not JSON: this is not the studio's board protocol") from None
    if not isinstance(header, dict) or "v" not in header:
        raise ProtocolError("a message without a protocol version: this is not the studio's board protocol")
    if header["v"] != VERSION:
        raise ProtocolError(f"the board agent speaks protocol version {header['v']!r}, this studio speaks "
                            f"{VERSION}: push the runtime again (studio board push) so both sides match")
    length = header.get("jpeg", 0)
    if not isinstance(length, int) or not 0 <= length <= MAX_PAYLOAD:
        raise ProtocolError(f"a message announcing {length!r} payload bytes")
    return header, _read_exactly(sock, length) if length else b""
