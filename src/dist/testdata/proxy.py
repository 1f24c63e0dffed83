import socket, threading, sys
lport, dport = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lport)); ls.listen(1)
c, _ = ls.accept()
d = socket.create_connection(("127.0.0.1", dport))
def pump(src, dst, fname):
    with open(fname, "wb") as f:
        while True:
            data = src.recv(65536)
            if not data:
                break
            f.write(data); f.flush()
            dst.sendall(data)
    try: dst.shutdown(socket.SHUT_WR)
    except Exception: pass
t1 = threading.Thread(target=pump, args=(c, d, "a2b.bin")); t2 = threading.Thread(target=pump, args=(d, c, "b2a.bin"))
t1.start(); t2.start(); t1.join(); t2.join()
