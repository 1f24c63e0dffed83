"""paho-mqtt (MQTT 5.0) against `beamq start`: QoS both ways, Will Delay, Session Expiry, Topic
Aliases both ways, Subscription Identifiers, No Local, Retain Handling / Retain As Published,
Message Expiry, request/response properties, User Properties, shared subscriptions."""

import time

from beamq_harness import BrokerTest, PacketTypes, Properties, SubscribeOptions, unittest


def props(kind, **kw):
    p = Properties(kind)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def connect_props(**kw):
    return props(PacketTypes.CONNECT, **kw)


def publish_props(**kw):
    return props(PacketTypes.PUBLISH, **kw)


class V5(BrokerTest):
    def c5(self, client_id, **kw):
        return self.client(client_id, v5=True, **kw)

    def test_qos_both_ways(self):
        sub = self.c5("sub5")
        pub = self.c5("pub5")
        for q in (0, 1, 2):
            self.assertEqual(sub.sub("q5/%d" % q, q), q)
        for pq in (0, 1, 2):
            for sq in (0, 1, 2):
                pub.pub("q5/%d" % sq, b"%d%d" % (pq, sq), qos=pq)
                m = sub.get()
                self.assertEqual((m.topic, m.payload, m.qos), ("q5/%d" % sq, b"%d%d" % (pq, sq),
                                                               min(pq, sq)))

    def test_will_delay(self):
        w = self.c5("will-watch")
        w.sub("wd/#", 1)
        will = dict(topic="wd/x", payload=b"late", qos=1,
                    properties=props(PacketTypes.WILLMESSAGE, WillDelayInterval=1))
        c = self.c5("delayed", will=will, props=connect_props(SessionExpiryInterval=10))
        t0 = time.time()
        c.drop()
        m = w.get(timeout=5)
        self.assertEqual(m.payload, b"late")
        self.assertGreaterEqual(time.time() - t0, 0.9)
        # Reconnecting within the delay cancels the Will.
        c = self.c5("delayed2", will=dict(will), props=connect_props(SessionExpiryInterval=10))
        c.drop()
        again = self.c5("delayed2", clean=False, props=connect_props(SessionExpiryInterval=10))
        w.none(1.8)
        again.disconnect()

    def test_session_expiry(self):
        s = self.c5("exp", clean=True, props=connect_props(SessionExpiryInterval=1))
        s.sub("se/#", 1)
        s.disconnect()
        pub = self.c5("exp-pub")
        pub.pub("se/1", b"queued", qos=1)
        back = self.c5("exp", clean=False, props=connect_props(SessionExpiryInterval=1))
        self.assertTrue(back.flags["session present"])
        self.assertEqual(back.get().payload, b"queued")
        back.disconnect()
        time.sleep(1.6)
        gone = self.c5("exp", clean=False, props=connect_props(SessionExpiryInterval=1))
        self.assertFalse(gone.flags["session present"])
        # Expiry 0 (the v5 default): the session ends with the connection.
        z = self.c5("zero", clean=True)
        z.sub("se/#", 1)
        z.disconnect()
        z2 = self.c5("zero", clean=False)
        self.assertFalse(z2.flags["session present"])

    def test_topic_alias_both_ways(self):
        sub = self.c5("alias-sub", props=connect_props(TopicAliasMaximum=5))
        self.assertGreater(sub.connack_props.TopicAliasMaximum, 0)
        sub.sub("ta/#", 1)
        pub = self.c5("alias-pub")
        # Client -> server: set alias 3 with the topic, then use it with an empty topic.
        pub.pub("ta/long/topic/name", b"one", qos=1, props=publish_props(TopicAlias=3))
        pub.pub("", b"two", qos=1, props=publish_props(TopicAlias=3))
        first, second = sub.get(), sub.get()
        # Server -> client: the first delivery sets an alias, the second uses it.
        self.assertEqual(first.topic, "ta/long/topic/name")
        self.assertEqual(first.payload, b"one")
        alias = first.properties.TopicAlias
        self.assertGreater(alias, 0)
        self.assertEqual(second.topic, "")
        self.assertEqual(second.properties.TopicAlias, alias)
        self.assertEqual(second.payload, b"two")
        # A client that offers no aliases gets full topics.
        plain = self.c5("alias-none")
        plain.sub("ta/#", 0)
        pub.pub("", b"three", qos=1, props=publish_props(TopicAlias=3))
        m = plain.get()
        self.assertEqual((m.topic, m.payload), ("ta/long/topic/name", b"three"))
        self.assertFalse(hasattr(m.properties, "TopicAlias"))

    def test_subscription_identifiers(self):
        s = self.c5("sid")
        s.sub("si/a/#", 1, props=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
        s.sub("si/+/x", 1, props=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=9))
        pub = self.c5("sid-pub")
        pub.pub("si/a/x", b"both", qos=1)
        ids = set()
        m = s.get()
        ids.update(m.properties.SubscriptionIdentifier)
        try:
            m2 = s.get(timeout=0.5)
            ids.update(m2.properties.SubscriptionIdentifier)
        except AssertionError:
            pass
        self.assertEqual(ids, {7, 9})
        pub.pub("si/b/x", b"one", qos=1)
        self.assertEqual(s.get().properties.SubscriptionIdentifier, [9])

    def test_no_local(self):
        c = self.c5("nolocal")
        c.sub("nl/#", 1, options=SubscribeOptions(qos=1, noLocal=True))
        other = self.c5("nl-other")
        other.sub("nl/#", 1)
        c.pub("nl/1", b"mine", qos=1)
        self.assertEqual(other.get().payload, b"mine")
        c.none()
        other.pub("nl/2", b"theirs", qos=1)
        self.assertEqual(c.get().payload, b"theirs")

    def test_retain_handling_and_retain_as_published(self):
        pub = self.c5("rh-pub")
        pub.pub("rh/t", b"kept", qos=1, retain=True)
        never = self.c5("rh2")
        never.sub("rh/#", 1, options=SubscribeOptions(qos=1, retainHandling=2))
        never.none()
        once = self.c5("rh1")
        once.sub("rh/#", 1, options=SubscribeOptions(qos=1, retainHandling=1))
        self.assertEqual(once.get().payload, b"kept")
        once.sub("rh/#", 1, options=SubscribeOptions(qos=1, retainHandling=1))
        once.none()
        rap = self.c5("rap")
        rap.sub("rh/#", 1, options=SubscribeOptions(qos=1, retainAsPublished=True,
                                                    retainHandling=2))
        plain = self.c5("rh-plain")
        plain.sub("rh/#", 1, options=SubscribeOptions(qos=1, retainHandling=2))
        pub.pub("rh/t", b"live", qos=1, retain=True)
        self.assertEqual(rap.get().retain, 1)
        self.assertEqual(plain.get().retain, 0)

    def test_message_expiry(self):
        s = self.c5("mx", clean=True, props=connect_props(SessionExpiryInterval=30))
        s.sub("mx/#", 1)
        s.disconnect()
        pub = self.c5("mx-pub")
        pub.pub("mx/short", b"expires", qos=1, props=publish_props(MessageExpiryInterval=1))
        pub.pub("mx/long", b"stays", qos=1, props=publish_props(MessageExpiryInterval=60))
        time.sleep(1.5)
        back = self.c5("mx", clean=False, props=connect_props(SessionExpiryInterval=30))
        m = back.get()
        self.assertEqual(m.payload, b"stays")
        # The remaining lifetime is sent, never more than was asked.
        self.assertLessEqual(m.properties.MessageExpiryInterval, 60)
        self.assertGreaterEqual(m.properties.MessageExpiryInterval, 55)
        back.none()
        # Retained messages expire too.
        pub.pub("mx/ret", b"old", qos=1, retain=True,
                props=publish_props(MessageExpiryInterval=1))
        time.sleep(1.5)
        late = self.c5("mx-late")
        late.sub("mx/ret", 1)
        late.none()

    def test_request_response_and_user_properties(self):
        responder = self.c5("responder")
        responder.sub("svc/req", 1)
        req_props = connect_props(RequestResponseInformation=1)
        requester = self.c5("requester", props=req_props)
        # Response Information is sent when the server has some; the request flag is accepted.
        requester.sub("svc/resp/requester", 1)
        p = publish_props(ResponseTopic="svc/resp/requester", CorrelationData=b"\x01\x02",
                          ContentType="text/plain", PayloadFormatIndicator=1)
        p.UserProperty = [("a", "1"), ("a", "2"), ("b", "x")]
        requester.pub("svc/req", b"ping", qos=1, props=p)
        req = responder.get()
        self.assertEqual(req.properties.ResponseTopic, "svc/resp/requester")
        self.assertEqual(req.properties.CorrelationData, b"\x01\x02")
        self.assertEqual(req.properties.ContentType, "text/plain")
        self.assertEqual(req.properties.PayloadFormatIndicator, 1)
        self.assertEqual(req.properties.UserProperty, [("a", "1"), ("a", "2"), ("b", "x")])
        rp = publish_props(CorrelationData=req.properties.CorrelationData)
        responder.pub(req.properties.ResponseTopic, b"pong", qos=1, props=rp)
        resp = requester.get()
        self.assertEqual((resp.payload, resp.properties.CorrelationData), (b"pong", b"\x01\x02"))

    def test_shared_subscription_v5(self):
        a = self.c5("s5a")
        b = self.c5("s5b")
        a.sub("$share/grp/s5/#", 1)
        b.sub("$share/grp/s5/#", 1)
        pub = self.c5("s5pub")
        for i in range(10):
            pub.pub("s5/%d" % i, b"%d" % i, qos=1)
        time.sleep(0.3)
        got = []
        for c in (a, b):
            while not c.msgs.empty():
                got.append(int(c.msgs.get().payload))
        self.assertEqual(sorted(got), list(range(10)))

    def test_connack_properties(self):
        c = self.c5("", props=connect_props(SessionExpiryInterval=0))
        p = c.connack_props
        # An empty client id gets an assigned one.
        self.assertTrue(p.AssignedClientIdentifier)
        self.assertGreater(p.MaximumPacketSize, 0)
        self.assertGreater(p.ReceiveMaximum, 0)


if __name__ == "__main__":
    unittest.main()
