#!/usr/bin/env python3
# Measures the gateway's resident memory while N authenticated clients each
# upload all but the last byte of an 8 MiB body and stall (docs/benchmarks.md,
# "Memory under stalled uploads"). Usage: hack/body-memory.py BINARY [N] [serve flags...]
# Loopback only; bounded (2 s of sending per upload).
import socket, subprocess, time, os, re, sys, json
binp = sys.argv[1]; n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
d = "/tmp/memm"; subprocess.run(["rm", "-rf", d]); os.makedirs(d)
env = dict(os.environ, XDG_DATA_HOME=d)
p = subprocess.Popen([binp, "serve", "--db", f"sqlite:{d}/db", "--listen", "127.0.0.1:18080", "--admin-listen", "off"] + sys.argv[3:],
                     stdout=subprocess.PIPE, stderr=open(d + "/err", "w"), env=env, text=True)
key = None
for line in p.stdout:
    if line.startswith("admin key:"):
        key = line.split(":", 1)[1].strip(); break
def rss():
    return int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{p.pid}/status").read()).group(1)) // 1024
time.sleep(3)
base = rss()
size = 8 << 20
socks = []
chunk = b"x" * (1 << 20)
for i in range(n):
    s = socket.create_connection(("127.0.0.1", 18080))
    s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Length: {size}\r\n\r\n".encode())
    s.setblocking(False)
    sent = 0
    t0 = time.time()
    while sent < size - 1 and time.time() - t0 < 2:
        try:
            sent += s.send(chunk[: min(len(chunk), size - 1 - sent)])
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    socks.append(s)
time.sleep(2)
peak = rss()
codes = {}
for s in socks:
    s.setblocking(True); s.settimeout(0.5)
    try:
        r = s.recv(64).decode(errors="replace").split(" ")[1]
    except Exception:
        r = "pending"
    codes[r] = codes.get(r, 0) + 1
print(json.dumps({"uploads": n, "rss_idle_mb": base, "rss_with_uploads_mb": peak, "answers": codes}))
p.terminate(); p.wait()
