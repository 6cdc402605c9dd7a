# Opens N keep-alive connections, gets MB megabytes on each, and keeps them
# open until stdin closes (bench/bigwrite.sh measures the server meanwhile).
import socket, sys
host, port, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
conns = []
for _ in range(n):
    c = socket.create_connection((host, port))
    c.sendall(b"GET /?mb=%d HTTP/1.1\r\nHost: x\r\n\r\n" % mb)
    acc = b""
    while b"\r\n\r\n" not in acc:
        acc += c.recv(65536)
    head, rest = acc.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    got = len(rest)
    while got < length:
        d = c.recv(1 << 20)
        if not d:
            sys.exit("closed early")
        got += len(d)
    conns.append(c)
print("ready", flush=True)
sys.stdin.read()
