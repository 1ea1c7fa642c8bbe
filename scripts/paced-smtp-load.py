#!/usr/bin/env python3
"""Open-loop SMTP load at a fixed rate, timing each message's acceptance.

Used by scripts/bench-latency; usable alone:

    scripts/paced-smtp-load.py --port 2525 --rate 1000 --duration 30

Messages arrive on a fixed schedule (rate per second, checked every
millisecond) whatever the server does: a message is handed to an idle
session when one is free, else it waits in the client's backlog (open loop:
a slow server makes the backlog grow, it does not slow the arrivals). Each
session connects once, says EHLO once, and sends message after message
(MAIL, RCPT and DATA pipelined when the server offers PIPELINING).

Latency of a message = from writing its content and the final "." line to
reading the reply (250): the time the server takes to make it durable and
answer. Also reported: the envelope's time (MAIL written to 354 read), how
late messages were sent after their scheduled arrival (backlog or client
delay), the achieved rate, the client's own CPU,
and, with --server-pid, the CPU of the server's process tree.

Only the standard library; every wait is bounded. Prints one JSON object.
"""

import argparse
import asyncio
import collections
import json
import math
import os
import resource
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")


def proc_tree_cpu_s(root):
    """CPU seconds of `root` and its live descendants (+ reaped children of root)."""
    if not root:
        return None
    stats, children = {}, collections.defaultdict(list)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        pid = int(name)
        stats[pid] = (int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]))
        children[int(rest[1])].append(pid)
    if root not in stats:
        return None
    total, todo, seen = stats[root][1], [root], set()
    while todo:
        p = todo.pop()
        if p in seen or p not in stats:
            continue
        seen.add(p)
        total += stats[p][0]
        todo.extend(children.get(p, ()))
    return total / CLK


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4]


def percentile(sorted_vals, q):
    """Nearest-rank percentile of an ascending list (q in 0..1)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q * len(sorted_vals)) - 1))
    return sorted_vals[k]


class Message:
    __slots__ = ("seq", "scheduled", "started", "go_ahead", "dot_sent", "replied", "code", "measured")

    def __init__(self, seq, scheduled, measured):
        self.seq = seq
        self.scheduled = scheduled
        self.started = None
        self.go_ahead = None
        self.dot_sent = None
        self.replied = None
        self.code = None
        self.measured = measured


class Session(asyncio.Protocol):
    """One SMTP connection: greeting, EHLO, then transaction after transaction."""

    def __init__(self, load):
        self.load = load
        self.transport = None
        self.buf = b""
        self.lines = []
        self.expect = collections.deque()
        self.pipelining = False
        self.ready = asyncio.get_running_loop().create_future()
        self.msg = None
        self.failed = False
        self.closed = False
        self.quitting = False

    # -- transport callbacks
    def connection_made(self, transport):
        self.transport = transport
        self.expect.append("greeting")

    def connection_lost(self, exc):
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))
        if self.msg is not None:
            self.load.finish(self, self.msg, "lost")
            self.msg = None
        if not self.quitting:
            self.load.session_lost(self)

    def data_received(self, data):
        now = time.monotonic()
        self.buf += data
        while True:
            i = self.buf.find(b"\r\n")
            if i < 0:
                return
            line, self.buf = self.buf[:i], self.buf[i + 2:]
            self.lines.append(line)
            if len(line) >= 4 and line[3:4] == b"-":
                continue
            reply, self.lines = self.lines, []
            self.on_reply(reply, now)

    # -- the protocol
    def send(self, data):
        self.transport.write(data)

    def on_reply(self, reply, now):
        code = reply[-1][:3].decode(errors="replace")
        what = self.expect.popleft() if self.expect else "unexpected"
        if what == "greeting":
            if code != "220":
                return self.fail(f"greeting {reply[-1]!r}")
            self.send(b"EHLO latency.bench.invalid\r\n")
            self.expect.append("ehlo")
        elif what == "ehlo":
            if code != "250":
                return self.fail(f"EHLO {reply[-1]!r}")
            self.pipelining = any(l[4:].upper().startswith(b"PIPELINING") for l in reply)
            self.ready.set_result(True)
        elif what == "mail":
            if code != "250":
                self.msg.code = f"MAIL {code}"
            if not self.pipelining:
                self.send(self.load.rcpt_cmd)
                self.expect.append("rcpt")
        elif what == "rcpt":
            if code != "250" and self.msg.code is None:
                self.msg.code = f"RCPT {code}"
            if not self.pipelining:
                if self.msg.code is None:
                    self.send(b"DATA\r\n")
                    self.expect.append("data")
                else:
                    self.send(b"RSET\r\n")
                    self.expect.append("rset")
        elif what == "data":
            if code != "354":
                if self.msg.code is None:
                    self.msg.code = f"DATA {code}"
                self.send(b"RSET\r\n")
                self.expect.append("rset")
                return
            self.msg.go_ahead = now
            content = self.load.content(self.msg.seq)
            self.msg.dot_sent = time.monotonic()
            self.send(content)
            self.expect.append("dot")
        elif what == "dot":
            msg, self.msg = self.msg, None
            msg.replied = now
            msg.code = code
            self.load.finish(self, msg, code)
        elif what == "rset":
            msg, self.msg = self.msg, None
            self.load.finish(self, msg, msg.code or f"RSET {code}")
        elif what == "quit":
            pass
        else:
            self.fail(f"unexpected reply {reply[-1]!r}")

    def fail(self, why):
        self.failed = True
        self.load.errors[why[:80]] += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport:
            self.transport.close()

    def start(self, msg):
        self.msg = msg
        msg.started = time.monotonic()
        if self.pipelining:
            self.send(self.load.mail_cmd + self.load.rcpt_cmd + b"DATA\r\n")
            self.expect.extend(("mail", "rcpt", "data"))
        else:
            self.send(self.load.mail_cmd)
            self.expect.append("mail")

    def quit(self):
        self.quitting = True
        if not self.closed and self.transport:
            self.send(b"QUIT\r\n")
            self.expect.append("quit")


class Load:
    def __init__(self, a):
        self.a = a
        self.mail_cmd = f"MAIL FROM:<{a.sender}>\r\n".encode()
        self.rcpt_cmd = f"RCPT TO:<{a.rcpt}>\r\n".encode()
        header = (
            f"From: <{a.sender}>\r\nTo: <{a.rcpt}>\r\nSubject: latency bench\r\n"
            "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
        ).encode()
        line = b"X" * 78 + b"\r\n"
        body = line * (a.size // len(line)) + b"Y" * max(0, a.size % len(line) - 2) + b"\r\n"
        self.header = header
        self.tail = b"\r\n" + body + b".\r\n"
        self.run_id = int(time.time())
        self.idle = collections.deque()
        self.backlog = collections.deque()
        self.sessions = []
        self.messages = []
        self.errors = collections.Counter()
        self.in_flight = 0
        self.backlog_max = 0
        self.lost = 0

    def content(self, seq):
        mid = f"Message-ID: <{seq}.{self.run_id}@latency.bench.invalid>\r\n".encode()
        return self.header + mid + self.tail

    def issue(self, msg):
        self.messages.append(msg)
        self.in_flight += 1
        while self.idle:
            s = self.idle.popleft()
            if not s.closed and not s.failed:
                s.start(msg)
                return
        self.backlog.append(msg)
        self.backlog_max = max(self.backlog_max, len(self.backlog))

    def finish(self, session, msg, code):
        self.in_flight -= 1
        if code != "250":
            self.errors[f"reply {code}"] += 1
        if session.closed or session.failed:
            return
        if self.backlog:
            session.start(self.backlog.popleft())
        else:
            self.idle.append(session)

    def session_lost(self, session):
        self.lost += 1


async def run(a):
    loop = asyncio.get_running_loop()
    load = Load(a)
    for _ in range(a.connections):
        _, s = await asyncio.wait_for(
            loop.create_connection(lambda: Session(load), a.host, a.port), 10)
        load.sessions.append(s)
    await asyncio.wait_for(asyncio.gather(*(s.ready for s in load.sessions)), 10)
    load.idle.extend(load.sessions)

    # The schedule: message k arrives at t_start + k / rate.
    t_start = time.monotonic()
    t_measure = t_start + a.warmup
    t_end = t_measure + a.duration
    issued = 0
    cpu0 = None
    done = loop.create_future()

    def snapshot():
        return (time.monotonic(), resource.getrusage(resource.RUSAGE_SELF),
                proc_tree_cpu_s(a.server_pid), machine_cpu())

    def tick():
        nonlocal issued, cpu0
        now = time.monotonic()
        if cpu0 is None and now >= t_measure:
            cpu0 = snapshot()
        while True:
            sched = t_start + issued / a.rate
            if sched > now or sched >= t_end:
                break
            load.issue(Message(issued, sched, t_measure <= sched))
            issued += 1
        if now >= t_end:
            done.set_result(None)
        else:
            # Wake at the next arrival (loop.time() is time.monotonic()), at
            # most `tick` from now; epoll rounds waits up to whole ms.
            loop.call_at(min(now + a.tick, t_start + issued / a.rate), tick)

    tick()
    await asyncio.wait_for(done, a.warmup + a.duration + 10)
    cpu1 = snapshot()
    # Let what is in flight finish (bounded).
    deadline = time.monotonic() + a.drain
    while load.in_flight > 0 and time.monotonic() < deadline and load.lost < len(load.sessions):
        await asyncio.sleep(0.01)
    for s in load.sessions:
        s.quit()
    await asyncio.sleep(0.2)
    for s in load.sessions:
        if s.transport:
            s.transport.close()

    measured = [m for m in load.messages if m.measured]
    ok = [m for m in measured if m.code == "250" and m.replied is not None]
    lat = sorted((m.replied - m.dot_sent) * 1000.0 for m in ok)
    wait = sorted((m.started - m.scheduled) * 1000.0 for m in measured if m.started is not None)
    envelope = sorted((m.go_ahead - m.started) * 1000.0 for m in ok)
    window = cpu1[0] - cpu0[0]
    replied_in_window = sum(1 for m in ok if t_measure <= m.replied < t_end)
    tot, idle = cpu1[3][0] - cpu0[3][0], cpu1[3][1] - cpu0[3][1]
    client_cpu = (cpu1[1].ru_utime + cpu1[1].ru_stime) - (cpu0[1].ru_utime + cpu0[1].ru_stime)
    srv_cpu = (cpu1[2] - cpu0[2]) if cpu1[2] is not None and cpu0[2] is not None else None
    r3 = lambda v: None if v is None else round(v, 3)
    return {
        "target_rate": a.rate,
        "connections": a.connections,
        "size": a.size,
        "pipelining": all(s.pipelining for s in load.sessions),
        "duration_s": round(window, 3),
        "scheduled": len(measured),
        "accepted": len(ok),
        "accepted_total": sum(1 for m in load.messages if m.code == "250"),
        "not_accepted": len(measured) - len(ok),
        "achieved_rate": round(replied_in_window / window, 1) if window else None,
        "latency_ms": {
            "p50": r3(percentile(lat, 0.50)),
            "p90": r3(percentile(lat, 0.90)),
            "p99": r3(percentile(lat, 0.99)),
            "p999": r3(percentile(lat, 0.999)),
            "max": r3(lat[-1] if lat else None),
            "mean": r3(sum(lat) / len(lat) if lat else None),
        },
        "envelope_ms": {
            "p50": r3(percentile(envelope, 0.50)),
            "p99": r3(percentile(envelope, 0.99)),
            "max": r3(envelope[-1] if envelope else None),
        },
        "send_delay_ms": {
            "p50": r3(percentile(wait, 0.50)),
            "p99": r3(percentile(wait, 0.99)),
            "max": r3(wait[-1] if wait else None),
        },
        "backlog_max": load.backlog_max,
        "sessions_lost": load.lost,
        "errors": dict(load.errors),
        "client_cpu_s": round(client_cpu, 2),
        "server_cpu_s": round(srv_cpu, 2) if srv_cpu is not None else None,
        "server_cpu_ms_per_msg": round(1000 * srv_cpu / len(ok), 3) if srv_cpu and ok else None,
        "machine_cpu_busy_pct": round(100.0 * (tot - idle) / tot, 1) if tot else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True, help="messages per second")
    ap.add_argument("--duration", type=float, default=30, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=3, help="seconds at the rate before measuring")
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096, help="body bytes (headers add ~200)")
    ap.add_argument("--sender", default="sender@bench.invalid")
    ap.add_argument("--rcpt", default="rcpt@example.net")
    ap.add_argument("--tick", type=float, default=0.01, help="longest sleep between arrival checks (s)")
    ap.add_argument("--drain", type=float, default=30, help="max wait for replies after the end (s)")
    ap.add_argument("--server-pid", type=int, default=0, help="sample CPU of this process tree")
    a = ap.parse_args()
    if a.rate <= 0 or a.duration <= 0 or a.connections <= 0:
        sys.exit("rate, duration and connections must be positive")
    out = asyncio.run(run(a))
    print(json.dumps(out))
    return 0 if out["not_accepted"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
