"""paho-mqtt (MQTT 3.1.1) against `beamq start`: QoS 0/1/2 both ways, retained messages, Will,
clean and persistent sessions with the offline queue, shared subscriptions, $SYS topics."""

import time

from beamq_harness import BrokerTest, unittest


class V311(BrokerTest):
    beamq_config = "sys_topics.sys_msg_interval = 1s\n"

    def test_qos_both_ways(self):
        sub = self.client("sub-311")
        pub = self.client("pub-311")
        for granted, qos in zip([sub.sub("q/%d" % q, q) for q in (0, 1, 2)], (0, 1, 2)):
            self.assertEqual(granted, qos)
        # Publish at every QoS to subscriptions at every QoS: delivered at the minimum.
        for pq in (0, 1, 2):
            for sq in (0, 1, 2):
                pub.pub("q/%d" % sq, b"p%d-s%d" % (pq, sq), qos=pq)
                m = sub.get()
                self.assertEqual(m.topic, "q/%d" % sq)
                self.assertEqual(m.payload, b"p%d-s%d" % (pq, sq))
                self.assertEqual(m.qos, min(pq, sq))
        sub.none()

    def test_retained_set_clear_and_on_subscribe(self):
        pub = self.client("ret-pub")
        pub.pub("r/b", b"also", qos=0, retain=True)
        # The QoS 1 acknowledgement also means the QoS 0 message before it was taken.
        pub.pub("r/a", b"kept", qos=1, retain=True)
        s1 = self.client("ret-s1")
        s1.sub("r/+", 1)
        got = sorted((m.topic, m.payload, m.retain) for m in (s1.get(), s1.get()))
        self.assertEqual(got, [("r/a", b"kept", 1), ("r/b", b"also", 1)])
        # A live publish to a subscriber is not flagged retained.
        pub.pub("r/a", b"new", qos=1, retain=True)
        m = s1.get()
        self.assertEqual((m.payload, m.retain), (b"new", 0))
        # An empty retained payload clears the topic.
        pub.pub("r/a", b"", qos=1, retain=True)
        self.assertEqual(s1.get().payload, b"")
        s2 = self.client("ret-s2")
        s2.sub("r/#", 1)
        m = s2.get()
        self.assertEqual((m.topic, m.payload, m.retain), ("r/b", b"also", 1))
        s2.none()

    def test_will_on_abrupt_close_not_on_disconnect(self):
        w = self.client("watcher")
        w.sub("will/#", 1)
        dying = self.client("dying", will=dict(topic="will/dying", payload=b"gone", qos=1))
        polite = self.client("polite", will=dict(topic="will/polite", payload=b"no", qos=1))
        polite.disconnect()
        dying.drop()
        m = w.get()
        self.assertEqual((m.topic, m.payload), ("will/dying", b"gone"))
        w.none()

    def test_persistent_session_queues_while_offline(self):
        s = self.client("durable", clean=False)
        self.assertEqual(s.flags["session present"], 0)
        s.sub("pq/#", 1)
        s.disconnect()
        pub = self.client("pq-pub")
        for i in range(5):
            pub.pub("pq/%d" % i, b"m%d" % i, qos=1)
        pub.pub("pq/q0", b"zero", qos=0)
        pub.pub("pq/end", b"end", qos=1)
        back = self.client("durable", clean=False)
        self.assertEqual(back.flags["session present"], 1)
        got = [back.get().payload for _ in range(7)]
        self.assertEqual(got, [b"m0", b"m1", b"m2", b"m3", b"m4", b"zero", b"end"])
        back.disconnect()
        # clean session ends it: nothing is kept, nothing is resent.
        clean = self.client("durable", clean=True)
        self.assertEqual(clean.flags["session present"], 0)
        pub.pub("pq/x", b"after", qos=1)
        clean.none()

    def test_clean_session_drops_subscriptions(self):
        s = self.client("ephemeral", clean=True)
        s.sub("eph/#", 1)
        s.disconnect()
        pub = self.client("eph-pub")
        pub.pub("eph/1", b"lost", qos=1)
        again = self.client("ephemeral", clean=True)
        self.assertEqual(again.flags["session present"], 0)
        again.none()

    def test_shared_subscription_each_message_once(self):
        a = self.client("share-a")
        b = self.client("share-b")
        q = self.client("queue-c")
        plain = self.client("plain")
        a.sub("$share/g/sh/#", 1)
        b.sub("$share/g/sh/#", 1)
        q.sub("$queue/sh/#", 1)
        plain.sub("sh/#", 1)
        pub = self.client("share-pub")
        n = 20
        for i in range(n):
            pub.pub("sh/%d" % i, b"%d" % i, qos=1)
        got_plain = [plain.get().payload for _ in range(n)]
        self.assertEqual(got_plain, [b"%d" % i for i in range(n)])
        time.sleep(0.3)
        group = []
        for c in (a, b):
            while not c.msgs.empty():
                group.append(c.msgs.get().payload)
        self.assertEqual(sorted(group, key=int), [b"%d" % i for i in range(n)])
        queue_got = []
        while not q.msgs.empty():
            queue_got.append(q.msgs.get().payload)
        self.assertEqual(len(queue_got), n)

    def test_sys_topics(self):
        s = self.client("sys-watch")
        self.assertEqual(s.sub("$SYS/brokers/+/version", 0), 0)
        m = s.get(timeout=WAIT_SYS)
        self.assertEqual(m.topic, "$SYS/brokers/%s/version" % self.node.name)
        self.assertTrue(m.payload)
        s.sub("$SYS/brokers/+/uptime", 0)
        s.sub("$SYS/brokers/+/stats/connections/count", 0)
        topics = set()
        deadline = time.time() + WAIT_SYS
        wanted = {"uptime", "stats/connections/count"}
        while not wanted <= topics and time.time() < deadline:
            topics.add(s.get(timeout=WAIT_SYS).topic.split("/", 3)[3])
        self.assertIn("uptime", topics)
        self.assertIn("stats/connections/count", topics)
        # A leading wildcard does not match $SYS topics.
        w = self.client("wild")
        w.sub("#", 0)
        w.none(1.5)


WAIT_SYS = 5.0


if __name__ == "__main__":
    unittest.main()
