#!/usr/bin/env python3
"""Traffic for the package upgrade test, run inside a network namespace.

listen PORT: accepts and closes TCP connections until SIGTERM.
send DST PORT ADMITTED STRANGER: connects to DST:PORT in a loop from the
admitted source (each connect must succeed, 2 s allowed) and from the
stranger (each SYN must go unanswered: 0.15 s), until SIGTERM; then prints
one line of counts: eop_ok eop_failed stranger_admitted stranger_refused.
"""
import signal
import socket
import sys
import threading

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())


def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = s.accept()
            conn.close()
        except socket.timeout:
            pass


def connects(dst, port, src, timeout):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.bind((src, 0))
        s.connect((dst, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def send(dst, port, admitted, stranger):
    counts = {"eop_ok": 0, "eop_failed": 0, "stranger_admitted": 0, "stranger_refused": 0}

    def loop(src, timeout, ok, bad):
        while not stop.is_set():
            counts[ok if connects(dst, port, src, timeout) else bad] += 1

    threads = [threading.Thread(target=loop, args=(admitted, 2.0, "eop_ok", "eop_failed")),
               threading.Thread(target=loop, args=(stranger, 0.15, "stranger_admitted", "stranger_refused"))]
    for t in threads:
        t.start()
    while not stop.wait(0.1):
        pass
    for t in threads:
        t.join()
    print(" ".join(f"{k}={v}" for k, v in counts.items()), flush=True)


if sys.argv[1] == "listen":
    listen(int(sys.argv[2]))
else:
    send(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
