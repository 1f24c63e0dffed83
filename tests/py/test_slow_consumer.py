"""A subscriber that never reads while a publisher floods: the broker's memory stays bounded
(deliveries to a full connection are dropped, DESIGN/decisions "MQTT broker concurrency") and
other clients keep being served."""

import socket
import struct
import threading
import time

from beamq_harness import Beamq, Client, unittest


def remaining_length(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def mqtt_str(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id):
    body = mqtt_str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + mqtt_str(client_id)
    return b"\x10" + remaining_length(len(body)) + body


def subscribe_packet(topic, qos):
    body = struct.pack("!H", 1) + mqtt_str(topic) + bytes([qos])
    return b"\x82" + remaining_length(len(body)) + body


def publish_qos0(topic, payload):
    body = mqtt_str(topic) + payload
    return b"\x30" + remaining_length(len(body)) + body


def raw_client(port, client_id, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(connect_packet(client_id))
    ack = s.recv(4)
    assert ack[:1] == b"\x20" and ack[3:4] == b"\x00", ack
    return s


class SlowConsumer(unittest.TestCase):
    def setUp(self):
        self.node = Beamq(args=("--ws-port", "off"), listeners=("tcp",))
        self.socks = []
        self.clients = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        for c in self.clients:
            c.close()
        self.node.stop()

    def test_flood_to_a_reader_that_never_reads(self):
        port = self.node.port
        slow = raw_client(port, "never-reads", rcvbuf=4096)
        self.socks.append(slow)
        slow.sendall(subscribe_packet("flood/#", 0))
        time.sleep(0.2)  # the SUBACK arrives; it is never read
        healthy = Client(port, "healthy")
        self.clients.append(healthy)
        healthy.sub("other/#", 1)
        publisher = raw_client(port, "flooder")
        self.socks.append(publisher)
        time.sleep(0.2)
        base = self.node.rss_kib()

        payload = b"x" * 10_000
        packet = publish_qos0("flood/t", payload)
        batch = packet * 100
        total_mib = 100
        rounds = total_mib * (1 << 20) // len(batch)
        done = threading.Event()

        def flood():
            try:
                for _ in range(rounds):
                    publisher.sendall(batch)
            finally:
                done.set()

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        # While the flood runs, others are served: a new client connects, and messages flow.
        served = 0
        peak = base
        while not done.is_set():
            other = Client(port, "late-%d" % served)
            other.pub("other/x", b"%d" % served, qos=1)
            self.assertEqual(healthy.get().payload, b"%d" % served)
            other.close()
            served += 1
            peak = max(peak, self.node.rss_kib())
        t.join(30)
        self.assertFalse(t.is_alive(), "the broker stopped reading the publisher")
        time.sleep(0.3)
        peak = max(peak, self.node.rss_kib())
        growth_mib = (peak - base) / 1024
        # 100 MiB went to a subscriber that read 4 KiB: what the broker kept is bounded by the
        # delivery channel and the output buffer, not by what was sent.
        self.assertLess(growth_mib, 48, "RSS grew %.1f MiB" % growth_mib)
        self.assertGreater(served, 0)
        # Still serving after the flood.
        healthy.pub("other/after", b"ok", qos=1)
        self.assertEqual(healthy.get().payload, b"ok")


if __name__ == "__main__":
    unittest.main()
