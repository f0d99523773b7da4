"""The board protocol on a socket pair: framing, versions, broken streams, Detections with their frame."""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from deploy.board.agent import protocol
from deploy.board.agent.messages import decode_jpeg, detections_from, encode_jpeg, result_header
from deploy.runtime.detections import Detections


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    b.settimeout(5)  # a reader waiting for bytes that never come fails instead of hanging
    yield a, b
    a.close()
    b.close()


def test_messages_round_trip_with_and_without_payload(pair):
    a, b = pair
    protocol.send(a, {"type": "hello", "names": ["ship"]})
    protocol.send(a, {"type": "result", "frame": 3}, b"\xff\xd8jpeg-bytes")
    header, payload = protocol.receive(b)
    assert header == {"type": "hello", "names": ["ship"], "v": protocol.VERSION, "jpeg": 0} and payload == b""
    header, payload = protocol.receive(b)
    assert header["frame"] == 3 and payload == b"\xff\xd8jpeg-bytes"


def test_another_version_is_refused_with_the_fix(pair):
    a, b = pair
    a.sendall(framed(json.dumps({"v": 2, "type": "hello"}).encode()))
    with pytest.raises(protocol.ProtocolError, match="version 2, this studio speaks 1: push the runtime again"):
        protocol.receive(b)


def framed(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


@pytest.mark.parametrize("raw, message", [
    (framed(b"hello"), "not JSON"),
    (b"\x7f\xff\xff\xff", "not the studio's board protocol"),
    (framed(b"[]"), "without a protocol version"),
    (framed(b'{"v":1,"jpeg":-5}'), "announcing -5 payload bytes"),
])
def test_foreign_bytes_are_refused(pair, raw, message):
    a, b = pair
    a.sendall(raw)
    with pytest.raises(protocol.ProtocolError, match=message):
        protocol.receive(b)


def test_a_stream_cut_inside_a_message_is_a_closed_connection(pair):
    a, b = pair
    a.sendall(protocol.encode({"type": "result"}, b"0123456789")[:-4])
    a.close()
    with pytest.raises(protocol.ConnectionClosed, match="inside a message"):
        protocol.receive(b)


def test_detections_and_frame_survive_the_trip(pair):
    a, b = pair
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :32] = (255, 0, 0)  # red on the left, in RGB
    dets = Detections(np.array([[1.234, 2, 30.5, 40]], np.float32), np.array([0.87654], np.float32),
                      np.array([2], np.int32), {"infer": 3.21}, frame=7, source="a.png", worker=1)
    protocol.send(a, result_header(dets), encode_jpeg(image, 90))
    header, payload = protocol.receive(b)
    back = detections_from(header, decode_jpeg(payload))
    assert back.frame == 7 and back.worker == 1 and back.source == "a.png" and back.timings == {"infer": 3.21}
    assert np.array_equal(back.boxes, dets.boxes) and np.array_equal(back.scores, dets.scores)  # float32, exactly
    assert back.classes.tolist() == [2]
    assert back.image.shape == image.shape and back.image[24, 8, 0] > 200 and back.image[24, 8, 2] < 60
