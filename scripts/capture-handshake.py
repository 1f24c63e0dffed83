#!/usr/bin/env python3
"""Records a real OTP distribution handshake between two stock `erl -name` nodes, for the test
vectors in tests/vectors/ (used by src/dist/handshake/tests.rs).

Node a listens on a fixed dist port and registers with a private epmd (port P1). Node b uses a
second private epmd (P2) where this script registers the name "a" with the port of a TCP proxy
that forwards to a and records both directions. b then runs net_kernel:connect_node('a@127.0.0.1').

Usage: scripts/capture-handshake.py OUT_FILE [COOKIE]
Every process started here is killed by PID at the end."""
import os, select, socket, struct, subprocess, sys, time

out_file = sys.argv[1]
cookie = sys.argv[2] if len(sys.argv) > 2 else "t"

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

procs = []
def start(cmd, env=None):
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p); return p

def wait_port(port, t=10):
    end = time.time() + t
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")

try:
    p1, p2, a_port, proxy_port = free_port(), free_port(), free_port(), free_port()
    start(["/usr/bin/epmd", "-port", str(p1)]); start(["/usr/bin/epmd", "-port", str(p2)])
    wait_port(p1); wait_port(p2)
    env_a = dict(os.environ, ERL_EPMD_PORT=str(p1))
    start(["erl", "-noshell", "-name", "a@127.0.0.1", "-setcookie", cookie,
           "-kernel", "inet_dist_listen_min", str(a_port), "inet_dist_listen_max", str(a_port)], env_a)
    wait_port(a_port)
    # Register "a" in epmd 2 with the proxy's port (ALIVE2_REQ, kept open).
    reg = socket.create_connection(("127.0.0.1", p2))
    name = b"a"
    body = struct.pack(">BHBBHHH", 120, proxy_port, 77, 0, 6, 6, len(name)) + name + struct.pack(">H", 0)
    reg.sendall(struct.pack(">H", len(body)) + body)
    reg.recv(16)
    lsock = socket.socket(); lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", proxy_port)); lsock.listen(1)
    env_b = dict(os.environ, ERL_EPMD_PORT=str(p2))
    b = start(["erl", "-noshell", "-name", "b@127.0.0.1", "-setcookie", cookie, "-eval",
               "R = net_kernel:connect_node('a@127.0.0.1'), io:format(\"~p~n\", [R]), "
               "timer:sleep(1500), halt()."], env_b)
    lsock.settimeout(15)
    cb, _ = lsock.accept()
    ca = socket.create_connection(("127.0.0.1", a_port))
    from_b, from_a = bytearray(), bytearray()
    end = time.time() + 1.0
    while time.time() < end:
        r, _, _ = select.select([cb, ca], [], [], 0.1)
        for s in r:
            d = s.recv(65536)
            if not d:
                end = 0; break
            if s is cb:
                from_b += d; ca.sendall(d)
            else:
                from_a += d; cb.sendall(d)
    with open(out_file, "w") as f:
        f.write("# Recorded with scripts/capture-handshake.py: stock OTP %s nodes, cookie %r.\n"
                % (subprocess.run(["erl", "-noshell", "-eval",
                                   "io:format(\"~s\", [erlang:system_info(otp_release)]), halt()."],
                                  capture_output=True, text=True).stdout, cookie))
        f.write("# initiator b@127.0.0.1 -> acceptor a@127.0.0.1, the first second of each direction.\n")
        f.write("initiator " + from_b.hex() + "\n")
        f.write("acceptor " + from_a.hex() + "\n")
    print("wrote", out_file, len(from_b), len(from_a))
finally:
    for p in procs:
        p.kill()
        p.wait()
