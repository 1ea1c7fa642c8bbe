#!/usr/bin/env python3
"""Measurements for scripts/bench-queue (standard library only, every wait bounded).

    mem PID                      RSS, PSS (smaps_rollup), peak RSS (VmHWM) of one process
    cpu PID SECONDS METRICS_URL  CPU of the process over SECONDS, machine busy %, and
                                 what the queue did meanwhile (from /metrics)
    startup T0 LOG PORT TIMEOUT  after a start at epoch T0: when the log said
                                 "spool recovered" (and its elapsed_ms), when the SMTP
                                 listener answered 220, when a first message got its 250
    sample PID METRICS_URL DIR OUT INTERVAL MAX_S
                                 a timeline appended to OUT (CSV: t_s, rss_kb, cpu_s,
                                 queue_messages, deferred_total, dir_bytes, machine_busy_pct)
    metrics METRICS_URL          the queue's series as JSON
    evict DIR                    fsync every file under DIR, then drop it from the page
                                 cache (posix_fadvise DONTNEED: only these files, no
                                 global drop_caches), for a cold-cache start
    du DIR                       bytes of the files under DIR (apparent and allocated)

Prints one JSON object (sample: CSV lines).
"""

import json
import os
import re
import socket
import sys
import time
import urllib.request

CLK = os.sysconf("SC_CLK_TCK")


def mem(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Anonymous"):
                out[k.lower() + "_kb"] = int(v.split()[0])
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:", "Threads:")):
                k, _, v = line.partition(":")
                out[k.lower() + ("_kb" if k.startswith("Vm") else "")] = int(v.split()[0])
    return out


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        rest = f.read().rsplit(b")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4]


def metrics(url):
    """Sums of the queue's series (labels summed away); {} when unavailable."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = re.split(r"[{ ]", line, 1)[0]
        if name in ("carteiro_queue_messages", "carteiro_queue_recipients",
                    "carteiro_messages_deferred_total", "carteiro_messages_delivered_total",
                    "carteiro_messages_expired_total", "carteiro_messages_bounced_total"):
            try:
                out[name] = out.get(name, 0) + float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return out


def du(path):
    apparent = allocated = files = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                st = os.lstat(os.path.join(root, n))
            except OSError:
                continue
            files += 1
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return {"files": files, "apparent_bytes": apparent, "allocated_bytes": allocated}


def cpu(pid, seconds, url):
    m0, c0, s0, t0 = metrics(url), proc_cpu_s(pid), machine_cpu(), time.monotonic()
    time.sleep(seconds)
    m1, c1, s1, t1 = metrics(url), proc_cpu_s(pid), machine_cpu(), time.monotonic()
    tot, idle = s1[0] - s0[0], s1[1] - s0[1]
    d = lambda k: (m1.get(k, 0) - m0.get(k, 0)) if k in m1 else None
    return {
        "seconds": round(t1 - t0, 2),
        "cpu_s": round(c1 - c0, 2),
        "cpu_pct_of_one_core": round(100 * (c1 - c0) / (t1 - t0), 1),
        "machine_cpu_busy_pct": round(100.0 * (tot - idle) / tot, 1) if tot else None,
        "deferred_attempts": d("carteiro_messages_deferred_total"),
        "queue_messages": m1.get("carteiro_queue_messages"),
    }


def smtp_first_message(port, timeout):
    """One message over a fresh connection; seconds until its 250 (None on failure)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        f = s.makefile("rb")

        def reply():
            while True:
                line = f.readline()
                if not line:
                    raise ConnectionError("closed")
                if line[3:4] != b"-":
                    return line[:3]

        if reply() != b"220":
            return None
        steps = [b"EHLO probe.bench.invalid\r\n", b"MAIL FROM:<probe@bench.invalid>\r\n",
                 b"RCPT TO:<probe@example.net>\r\n", b"DATA\r\n"]
        for cmd, want in zip(steps, (b"250", b"250", b"250", b"354")):
            s.sendall(cmd)
            if reply() != want:
                return None
        s.sendall(b"Subject: probe after restart\r\n\r\nprobe\r\n.\r\n")
        ok = reply() == b"250"
        s.sendall(b"QUIT\r\n")
        return time.monotonic() - t0 if ok else None


def startup(t0, log, port, timeout):
    deadline = time.time() + timeout
    out = {"recovered_seen_s": None, "recovered_elapsed_ms": None, "recovered_messages": None,
           "smtp_banner_s": None, "first_250_s": None}
    pos = 0
    pending = b""
    while time.time() < deadline and (out["recovered_seen_s"] is None or out["smtp_banner_s"] is None):
        if out["recovered_seen_s"] is None:
            try:
                with open(log, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos += len(chunk)
            except OSError:
                chunk = b""
            pending += chunk
            for line in pending.split(b"\n")[:-1]:
                if b"spool recovered" in line:
                    out["recovered_seen_s"] = round(time.time() - t0, 3)
                    m = re.search(rb"elapsed_ms=(\d+)", line)
                    out["recovered_elapsed_ms"] = int(m.group(1)) if m else None
                    m = re.search(rb"messages=(\d+)", line)
                    out["recovered_messages"] = int(m.group(1)) if m else None
            pending = pending.rsplit(b"\n", 1)[-1]
        if out["smtp_banner_s"] is None:
            try:
                with socket.create_connection(("127.0.0.1", port), 1) as s:
                    s.settimeout(max(1, deadline - time.time()))
                    if s.recv(512).startswith(b"220"):
                        out["smtp_banner_s"] = round(time.time() - t0, 3)
            except OSError:
                pass
        time.sleep(0.01)
    if out["smtp_banner_s"] is not None:
        try:
            took = smtp_first_message(port, max(1, deadline - time.time()))
            if took is not None:
                out["first_250_s"] = round(time.time() - t0, 3)
                out["first_message_s"] = round(took, 3)
        except OSError as e:
            out["first_message_error"] = str(e)
    return out


def sample(pid, url, path, out, interval, max_s):
    t0 = time.monotonic()
    with open(out, "a") as f:
        prev = machine_cpu()
        while time.monotonic() - t0 < max_s:
            try:
                rss = mem(pid).get("vmrss_kb")
                c = proc_cpu_s(pid)
            except OSError:
                return
            m = metrics(url)
            now = machine_cpu()
            tot, idle = now[0] - prev[0], now[1] - prev[1]
            prev = now
            f.write("%.1f,%s,%.2f,%s,%s,%d,%s\n" % (
                time.monotonic() - t0, rss, c, m.get("carteiro_queue_messages", ""),
                m.get("carteiro_messages_deferred_total", ""), du(path)["allocated_bytes"],
                round(100.0 * (tot - idle) / tot, 1) if tot else ""))
            f.flush()
            time.sleep(interval)


def evict(path):
    n = 0
    for root, _, names in os.walk(path):
        for name in names:
            p = os.path.join(root, name)
            try:
                fd = os.open(p, os.O_RDONLY)
            except OSError:
                continue
            try:
                try:
                    os.fsync(fd)
                except OSError:
                    pass
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                n += 1
            finally:
                os.close(fd)
    return {"evicted_files": n}


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "mem":
        res = mem(int(args[0]))
    elif cmd == "cpu":
        res = cpu(int(args[0]), float(args[1]), args[2])
    elif cmd == "startup":
        res = startup(float(args[0]), args[1], int(args[2]), float(args[3]))
    elif cmd == "sample":
        sample(int(args[0]), args[1], args[2], args[3], float(args[4]), float(args[5]))
        return 0
    elif cmd == "metrics":
        res = metrics(args[0])
    elif cmd == "evict":
        res = evict(args[0])
    elif cmd == "du":
        res = du(args[0])
    else:
        sys.exit(f"unknown command {cmd}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
