"""Helpers for the paho-mqtt end-to-end tests: start `beamq start` on ports it picks (MQTT
listeners on port 0, parsed from its "listening on port" lines; a free ekka dist port from the
node name), kill it by PID, and drive paho clients synchronously with timeouts.

Run a test file directly with Debian's /usr/bin/python3 (scripts/test-all does). BEAMQ_BIN names
the binary (default: target/debug/beamq of this checkout).
"""

import os
import queue
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import warnings

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("BEAMQ_BIN") or os.path.join(ROOT, "target", "debug", "beamq")
WAIT = 10.0

# paho 1.6 builds its TLS context with a deprecated constant, and a client refused during the
# WebSocket upgrade leaves its socket to the collector: neither is about the broker.
warnings.simplefilter("ignore", DeprecationWarning)
warnings.simplefilter("ignore", ResourceWarning)

__all__ = [
    "Beamq", "Client", "Properties", "PacketTypes", "SubscribeOptions", "WAIT", "make_certs",
    "mqtt", "unittest",
]


def _free_node_name(prefix):
    """A node name whose ekka dist port (4370 + numeric suffix) is free now."""
    while True:
        # below the kernel's client ports (32768..): no connect() takes it meanwhile
        n = random.randrange(1000, 28000)
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 4370 + n))
            return "%s%d@127.0.0.1" % (prefix, n)
        except OSError:
            continue
        finally:
            s.close()


def _die_with_parent():
    """In the child before exec: the kernel kills it if the test process dies first (a runner
    killed by a timeout leaves no broker behind)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except OSError:
        pass


class Beamq:
    """A running `beamq start`; `ports` maps tcp/tls/ws to the bound port."""

    def __init__(self, args=(), config=None, listeners=("tcp", "ws"), files=None, env=None,
                 port_flags=True):
        self.dir = tempfile.mkdtemp(prefix="beamq-py-")
        for name, content in (files or {}).items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(content)
        self.name = _free_node_name("bqpy")
        cmd = [BIN, "start", "--name", self.name, "--cookie", "beamq_py",
               "--data-dir", os.path.join(self.dir, "data")]
        if port_flags:
            # Free ports for the listeners asked for, `off` for the others.
            for kind, flag in (("tcp", "--mqtt-port"), ("tls", "--tls-port"), ("ws", "--ws-port")):
                if flag not in args and (kind != "tls" or kind in listeners):
                    cmd += [flag, "0" if kind in listeners else "off"]
        cmd += list(args)
        if config is not None:
            path = os.path.join(self.dir, "beamq.conf")
            with open(path, "w") as f:
                f.write(config)
            cmd += ["--config", path]
        e = dict(os.environ)
        for k in ("WITH_EPMD", "EMQX_NODE_NAME", "EMQX_NODE_COOKIE"):
            e.pop(k, None)
        e["RUST_LOG"] = "warn"
        e.update(env or {})
        self.log = open(os.path.join(self.dir, "stderr.txt"), "w+")
        self.proc = subprocess.Popen(cmd, cwd=self.dir, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env=e,
                                     preexec_fn=_die_with_parent)
        self.ports = {}
        try:
            first = self._line()
            assert " started, dist port " in first, first
            for _ in listeners:
                line = self._line()
                rest = line[len("beamq mqtt "):]
                kind, _, port = rest.partition("listening on port ")
                self.ports[kind.strip() or "tcp"] = int(port)
        except BaseException:
            self.stop()
            raise

    def _line(self):
        out = queue.Queue()
        t = threading.Thread(target=lambda: out.put(self.proc.stdout.readline()), daemon=True)
        t.start()
        try:
            line = out.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("beamq start printed nothing in %ss: %s" % (WAIT, self.stderr()))
        if not line:
            raise AssertionError("beamq start exited: %s" % self.stderr())
        return line.rstrip("\n")

    def stderr(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    @property
    def port(self):
        return self.ports["tcp"]

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 9)
        self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)


class Client:
    """A paho client with its network loop in a thread and every callback on a queue."""

    def __init__(self, port, client_id, v5=False, clean=True, transport="tcp", tls_ca=None,
                 user=None, password=None, will=None, props=None, keepalive=60,
                 expect_rc=0, host="127.0.0.1", ws_path="/mqtt", tls_cert=None, tls_key=None, connack_wait=WAIT):
        self.v5 = v5
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        if v5:
            self.c = mqtt.Client(client_id=client_id, protocol=proto, transport=transport)
        else:
            self.c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=proto,
                                 transport=transport)
        if transport == "websockets":
            self.c.ws_set_options(path=ws_path)
        if tls_ca:
            self.c.tls_set(ca_certs=tls_ca, certfile=tls_cert, keyfile=tls_key)
        if user is not None:
            self.c.username_pw_set(user, password)
        if will:
            self.c.will_set(**will)
        self.msgs = queue.Queue()
        self.acks = queue.Queue()
        self.connack = queue.Queue()
        self.disconnects = queue.Queue()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = lambda c, u, mid, *rest: self.acks.put(("unsub", mid, rest))
        self.c.on_publish = lambda c, u, mid: self.acks.put(("pub", mid, None))
        self.c.on_disconnect = lambda c, u, rc, *rest: self.disconnects.put(rc)
        kw = {}
        if v5:
            kw["clean_start"] = clean
            if props is not None:
                kw["properties"] = props
        self.c.connect(host, port, keepalive, **kw)
        self.c.loop_start()
        try:
            self.rc, self.flags, self.connack_props = self.connack.get(timeout=connack_wait)
        except queue.Empty:
            self.close()
            raise AssertionError("no CONNACK from port %d" % port)
        if expect_rc is not None and self.rc != expect_rc:
            self.close()
            raise AssertionError("CONNACK %r, wanted %r" % (self.rc, expect_rc))

    def _on_connect(self, c, u, flags, rc, props=None):
        code = rc.value if hasattr(rc, "value") else rc
        self.connack.put((code, flags, props))

    def _on_subscribe(self, c, u, mid, granted, props=None):
        codes = [g.value if hasattr(g, "value") else g for g in granted]
        self.acks.put(("sub", mid, codes))

    def _ack(self, kind, mid):
        deadline = time.time() + WAIT
        stash = []
        try:
            while True:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("no %s ack for mid %d" % (kind, mid))
                try:
                    k, m, data = self.acks.get(timeout=left)
                except queue.Empty:
                    raise AssertionError("no %s ack for mid %d" % (kind, mid))
                if k == kind and m == mid:
                    return data
                stash.append((k, m, data))
        finally:
            for s in stash:
                self.acks.put(s)

    def sub(self, topic, qos=0, options=None, props=None):
        """SUBSCRIBE one filter; returns the granted code (QoS or failure code)."""
        if self.v5:
            opts = options or SubscribeOptions(qos=qos)
            rc, mid = self.c.subscribe(topic, options=opts, properties=props)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == 0, rc
        return self._ack("sub", mid)[0]

    def unsub(self, topic):
        rc, mid = self.c.unsubscribe(topic)
        assert rc == 0, rc
        self._ack("unsub", mid)

    def pub(self, topic, payload, qos=0, retain=False, props=None, wait=True):
        info = self.c.publish(topic, payload, qos, retain, properties=props) if self.v5 else \
            self.c.publish(topic, payload, qos, retain)
        if wait and qos > 0:
            self._ack("pub", info.mid)
        return info

    def get(self, timeout=WAIT):
        try:
            return self.msgs.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message within %ss" % timeout)

    def get_topic(self, topic, timeout=WAIT):
        """The next message on `topic`, skipping others ($SYS noise)."""
        deadline = time.time() + timeout
        while True:
            m = self.get(max(0.01, deadline - time.time()))
            if m.topic == topic:
                return m

    def none(self, timeout=0.5):
        try:
            m = self.msgs.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError("unexpected message %s %r" % (m.topic, m.payload))

    def disconnect(self, props=None, reason=None):
        if self.v5 and (props is not None or reason is not None):
            from paho.mqtt.reasoncodes import ReasonCodes
            rc = ReasonCodes(PacketTypes.DISCONNECT, identifier=reason or 0)
            self.c.disconnect(reasoncode=rc, properties=props)
        else:
            self.c.disconnect()
        self.c.loop_stop()

    def drop(self):
        """Close the socket without DISCONNECT (a crash, as the Will needs)."""
        self.c.loop_stop()
        self.c.socket().close()

    def close(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


def make_certs(directory):
    """A CA and a server certificate for localhost/127.0.0.1 signed by it, with openssl:
    ca.pem, cert.pem, key.pem in `directory`; and a client certificate client.pem /
    client.key signed by the same CA."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=directory, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=beamq test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem", "-out", "server.csr",
        "-subj", "/CN=localhost")
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "ext.cnf")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "client.key", "-out", "client.csr",
        "-subj", "/CN=beamq test client")
    # Extensions make it an X.509 v3 certificate (webpki, hence rustls, refuses v1).
    with open(os.path.join(directory, "client.cnf"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "client.pem", "-days", "2", "-extfile", "client.cnf")


class BrokerTest(unittest.TestCase):
    """Each test gets its own `beamq start` (by default TCP + WebSocket on free ports; a class
    changes that in `start_node`), and its clients and node are stopped after it."""

    beamq_args = ()
    beamq_config = None

    def start_node(self):
        return Beamq(args=self.beamq_args, config=self.beamq_config)

    def setUp(self):
        self.clients = []
        self.node = self.start_node()

    def tearDown(self):
        for c in self.clients:
            c.close()
        self.node.stop()

    def client(self, client_id, **kw):
        c = Client(kw.pop("port", self.node.port), client_id, **kw)
        self.clients.append(c)
        return c
