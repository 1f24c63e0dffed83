"""TLS and WebSocket listeners from a `beamq start --config` file, with paho-mqtt (3.1.1 and 5.0)
and Debian's mosquitto_pub / mosquitto_sub over TLS (`--cafile`); authentication from a password
file written by `beamq passwd` and an ACL file."""

import os
import subprocess
import tempfile

from beamq_harness import BIN, Beamq, BrokerTest, Client, unittest, make_certs

TLS_CONF = """
listeners.tcp.default.bind = "127.0.0.1:0"
listeners.ssl.default.bind = "127.0.0.1:0"
listeners.ssl.default.ssl_options.certfile = cert.pem
listeners.ssl.default.ssl_options.keyfile = key.pem
listeners.ws.default.bind = "127.0.0.1:0"
listeners.ws.default.websocket.mqtt_path = "/mqtt"
"""


def mosquitto(*args, timeout=15):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


class Transports(BrokerTest):
    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="beamq-certs-")
        make_certs(cls.certs)
        files = {}
        for f in ("ca.pem", "cert.pem", "key.pem"):
            with open(os.path.join(cls.certs, f)) as fh:
                files[f] = fh.read()
        cls.files = files

    def start_node(self):
        return Beamq(config=TLS_CONF, listeners=("tcp", "tls", "ws"), files=self.files,
                     port_flags=False)

    def setUp(self):
        super().setUp()
        self.ca = self.node.path("ca.pem")

    def test_paho_over_tls_and_websocket(self):
        tls3 = self.client("tls3", port=self.node.ports["tls"], tls_ca=self.ca, host="localhost")
        tls5 = self.client("tls5", port=self.node.ports["tls"], v5=True, tls_ca=self.ca,
                           host="localhost")
        ws3 = self.client("ws3", port=self.node.ports["ws"], transport="websockets")
        ws5 = self.client("ws5", port=self.node.ports["ws"], v5=True, transport="websockets")
        tcp = self.client("tcp", port=self.node.port)
        everyone = [tls3, tls5, ws3, ws5, tcp]
        for c in everyone:
            self.assertEqual(c.sub("x/#", 2), 2)
        for i, c in enumerate(everyone):
            c.pub("x/%d" % i, b"from %d" % i, qos=2)
        for c in everyone:
            got = sorted(c.get().payload for _ in everyone)
            self.assertEqual(got, sorted(b"from %d" % i for i in range(len(everyone))))
        # A large message crosses WebSocket frames and TLS records.
        big = os.urandom(200_000)
        tcp.pub("x/big", big, qos=1)
        for c in (tls3, ws5):
            self.assertEqual(c.get().payload, big)

    def test_websocket_wrong_path_is_refused(self):
        with self.assertRaises(Exception):
            Client(self.node.ports["ws"], "badpath", transport="websockets", ws_path="/nope",
                   connack_wait=2)

    def test_mosquitto_clients_over_tls(self):
        port = str(self.node.ports["tls"])
        common = ["-h", "localhost", "-p", port, "--cafile", self.ca]
        r = mosquitto("mosquitto_pub", *common, "-t", "m/ret", "-m", "kept", "-q", "1", "-r")
        self.assertEqual(r.returncode, 0, r.stderr)
        sub = subprocess.Popen(["mosquitto_sub", *common, "-t", "m/#", "-v", "-q", "2",
                                "-C", "2", "-W", "15", "-V", "mqttv5"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = sub.stdout.readline().strip()
            self.assertEqual(first, "m/ret kept")
            r = mosquitto("mosquitto_pub", *common, "-t", "m/live", "-m", "hello", "-q", "2",
                          "-V", "mqttv311")
            self.assertEqual(r.returncode, 0, r.stderr)
            out, err = sub.communicate(timeout=15)
            self.assertEqual(out.strip(), "m/live hello")
            self.assertEqual(sub.returncode, 0, err)
        finally:
            if sub.poll() is None:
                os.kill(sub.pid, 9)
                sub.wait()
        # A client that does not trust the CA fails the handshake.
        r = mosquitto("mosquitto_pub", "-h", "localhost", "-p", port, "--cafile",
                      os.path.join(self.certs, "key.pem"), "-t", "m/x", "-m", "no")
        self.assertNotEqual(r.returncode, 0)


class ClientCertificates(unittest.TestCase):
    """`verify = verify_peer` + `fail_if_no_peer_cert`: only clients with a certificate from
    `cacertfile` get through the handshake."""

    def setUp(self):
        self.certs = tempfile.mkdtemp(prefix="beamq-certs-")
        make_certs(self.certs)
        conf = TLS_CONF + """
listeners.ssl.default.ssl_options.cacertfile = "%s/ca.pem"
listeners.ssl.default.ssl_options.verify = verify_peer
listeners.ssl.default.ssl_options.fail_if_no_peer_cert = true
listeners.ws.default.enable = false
""" % self.certs
        files = {}
        for f in ("cert.pem", "key.pem"):
            with open(os.path.join(self.certs, f)) as fh:
                files[f] = fh.read()
        self.node = Beamq(config=conf, listeners=("tcp", "tls"), files=files, port_flags=False)

    def tearDown(self):
        self.node.stop()

    def test_client_certificate_required(self):
        ca = os.path.join(self.certs, "ca.pem")
        port = self.node.ports["tls"]
        ok = Client(port, "with-cert", tls_ca=ca, host="localhost",
                    tls_cert=os.path.join(self.certs, "client.pem"),
                    tls_key=os.path.join(self.certs, "client.key"))
        ok.close()
        with self.assertRaises(Exception):
            Client(port, "no-cert", tls_ca=ca, host="localhost", connack_wait=2)
        common = ["-h", "localhost", "-p", str(port), "--cafile", ca, "-t", "c/x", "-m", "m"]
        r = mosquitto("mosquitto_pub", *common, "--cert", os.path.join(self.certs, "client.pem"),
                      "--key", os.path.join(self.certs, "client.key"))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = mosquitto("mosquitto_pub", *common)
        self.assertNotEqual(r.returncode, 0)


AUTH_CONF = """
allow_anonymous = false
password_file = passwd
acl_file = acl.conf
acl_nomatch = deny
listeners.tcp.default.bind = "127.0.0.1:0"
listeners.ssl.default.bind = "127.0.0.1:0"
listeners.ssl.default.ssl_options.certfile = cert.pem
listeners.ssl.default.ssl_options.keyfile = key.pem
listeners.ws.default.enable = false
"""

ACL = """allow user:alice pubsub home/%u/#
allow client:sensor-1 publish sensors/%c/#
allow all subscribe sensors/#
deny all
"""


class Auth(BrokerTest):
    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="beamq-certs-")
        make_certs(cls.certs)
        # The password file as an operator writes it: with `beamq passwd`.
        passwd = os.path.join(cls.certs, "passwd")
        for create, user, pw in ((True, "alice", "wonderland"), (False, "sensor", "s3cret")):
            args = [BIN, "passwd"] + (["-c"] if create else []) + [passwd, user, pw]
            subprocess.run(args, check=True)
        cls.files = {"acl.conf": ACL}
        for f in ("ca.pem", "cert.pem", "key.pem", "passwd"):
            with open(os.path.join(cls.certs, f)) as fh:
                cls.files[f] = fh.read()

    def start_node(self):
        return Beamq(config=AUTH_CONF, listeners=("tcp", "tls"), files=self.files,
                     port_flags=False)

    def test_connack_codes(self):
        p = self.node.port
        self.assertEqual(self.client("anon", port=p, expect_rc=None).rc, 5)
        self.assertEqual(self.client("bad", port=p, user="alice", password="x", expect_rc=None).rc, 4)
        self.assertEqual(self.client("nouser", port=p, user="bob", password="x", expect_rc=None).rc, 4)
        self.assertEqual(self.client("anon5", port=p, v5=True, expect_rc=None).rc, 0x87)
        self.assertEqual(self.client("bad5", port=p, v5=True, user="alice", password="x",
                                     expect_rc=None).rc, 0x86)
        self.assertEqual(self.client("ok", port=p, user="alice", password="wonderland").rc, 0)

    def test_acl_publish_and_subscribe(self):
        p = self.node.port
        alice = self.client("alice-1", port=p, user="alice", password="wonderland")
        alice5 = self.client("alice-5", port=p, v5=True, user="alice", password="wonderland")
        sensor = self.client("sensor-1", port=p, user="sensor", password="s3cret")
        self.assertEqual(alice.sub("home/alice/#", 1), 1)
        self.assertEqual(alice.sub("home/bob/#", 1), 0x80)
        self.assertEqual(alice.sub("sensors/#", 1), 1)
        self.assertEqual(alice5.sub("home/bob/#", 1), 0x87)
        self.assertEqual(alice5.sub("$share/g/home/alice/#", 1), 1)
        # %c: sensor-1 may publish under its own client id only.
        sensor.pub("sensors/sensor-1/t", b"21.5", qos=1)
        sensor.pub("sensors/sensor-2/t", b"forged", qos=1)
        m = alice.get()
        self.assertEqual((m.topic, m.payload), ("sensors/sensor-1/t", b"21.5"))
        # Refused publishes are dropped (v3 acknowledges them, as mosquitto).
        sensor.pub("home/alice/door", b"open", qos=1)
        alice5.pub("home/bob/door", b"open", qos=1, wait=False)
        alice.none(0.5)
        alice.pub("home/alice/lamp", b"on", qos=1)
        self.assertEqual(alice.get().payload, b"on")
        self.assertEqual(alice5.get().payload, b"on")

    def test_mosquitto_clients_with_password_over_tls(self):
        port = str(self.node.ports["tls"])
        common = ["-h", "localhost", "-p", port, "--cafile", self.node.path("ca.pem")]
        r = mosquitto("mosquitto_pub", *common, "-u", "alice", "-P", "wonderland",
                      "-t", "home/alice/ret", "-m", "kept", "-q", "1", "-r")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = mosquitto("mosquitto_sub", *common, "-u", "alice", "-P", "wonderland",
                      "-t", "home/alice/#", "-C", "1", "-W", "10", "-v")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "home/alice/ret kept"), r.stderr)
        r = mosquitto("mosquitto_sub", *common, "-u", "alice", "-P", "wrong",
                      "-t", "home/alice/#", "-C", "1", "-W", "5")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("bad user name or password", (r.stderr + r.stdout).lower())


if __name__ == "__main__":
    unittest.main()
