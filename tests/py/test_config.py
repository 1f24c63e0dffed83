"""Settings from a `beamq start --config` file reach the broker, as paho clients see them:
limits advertised in CONNACK and enforced, the QoS cap, the shared subscription strategy, the
CONNECT deadline; flags beat the file."""

import socket
import time

from beamq_harness import Beamq, BrokerTest, Client, PacketTypes, Properties, unittest

CONF = """
# limits an operator sets, EMQX 5 names
mqtt.max_packet_size = 2KB
mqtt.max_qos_allowed = 1
mqtt.server_keepalive = 30
mqtt.max_topic_alias = 4
mqtt.response_information = "resp/"
mqtt.idle_timeout = 1s
mqtt.shared_subscription_strategy = round_robin
sys_topics.sys_msg_interval = disabled
listeners.ws.default.enable = false
"""


class FromConfig(BrokerTest):
    def start_node(self):
        # --mqtt-port beats the file's (default) bind; the file turns WebSocket off.
        return Beamq(args=("--mqtt-port", "0"), config=CONF, listeners=("tcp",),
                     port_flags=False)

    def test_connack_advertises_configured_limits(self):
        p = Properties(PacketTypes.CONNECT)
        p.RequestResponseInformation = 1
        c = self.client("limits", v5=True, props=p, keepalive=60)
        cp = c.connack_props
        self.assertEqual(cp.MaximumPacketSize, 2048)
        self.assertEqual(cp.MaximumQoS, 1)
        self.assertEqual(cp.ServerKeepAlive, 30)
        self.assertEqual(cp.TopicAliasMaximum, 4)
        self.assertEqual(cp.ResponseInformation, "resp/")

    def test_qos_capped_and_packet_size_enforced(self):
        sub = self.client("cap")
        self.assertEqual(sub.sub("cap/#", 2), 1)
        pub = self.client("cap-pub")
        pub.pub("cap/ok", b"x" * 1000, qos=1)
        self.assertEqual(sub.get().payload, b"x" * 1000)
        # Over 2 KiB: the broker closes the connection (3.1.1 has no reason code to send).
        pub.pub("cap/big", b"x" * 4000, qos=0, wait=False)
        rc = pub.disconnects.get(timeout=5)
        self.assertNotEqual(rc, 0)
        sub.none()

    def test_round_robin_strategy(self):
        a = self.client("rr-a")
        b = self.client("rr-b")
        a.sub("$share/g/rr", 1)
        b.sub("$share/g/rr", 1)
        pub = self.client("rr-pub")
        for i in range(6):
            pub.pub("rr", b"%d" % i, qos=1)
        time.sleep(0.3)
        counts = [a.msgs.qsize(), b.msgs.qsize()]
        self.assertEqual(counts, [3, 3])

    def test_connect_deadline(self):
        s = socket.create_connection(("127.0.0.1", self.node.port))
        s.settimeout(5)
        t0 = time.time()
        self.assertEqual(s.recv(1), b"")  # closed by the broker, nothing sent
        self.assertGreater(time.time() - t0, 0.8)
        self.assertLess(time.time() - t0, 4)
        s.close()


if __name__ == "__main__":
    unittest.main()
