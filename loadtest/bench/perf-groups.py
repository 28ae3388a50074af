#!/usr/bin/env python3
"""Groups `perf script -F ip,sym,dso` samples by where the CPU went.

Reads perf's output on stdin; prints each group's share of the samples.
Kernel samples are grouped by the system call under them (a send's
samples in softirq, the receiving side's TCP stack run on the sender's
CPU over loopback, apart); user-space samples by the crate or module of
the function they landed in.
"""
import collections
import re
import sys

FRAME = re.compile(r"\s*[0-9a-f]+ (.*) \((.*)\)$")

# A kernel sample belongs to the first of these system calls in its stack.
SYSCALLS = [
    ("sendto", "send"),
    ("sys_write", "send"),
    ("sys_writev", "send"),
    ("recvfrom", "recv"),
    ("sys_read", "recv"),
    ("epoll_wait", "epoll_wait"),
    ("futex", "futex"),
]

# A user-space sample belongs to the first group whose pattern is in its function.
USER = [
    ("fanout::queue", "per-member queue"),
    ("tokio::sync::notify", "per-member queue (wake-up)"),
    ("fanout::hub", "hub dispatch"),
    ("tokio::runtime::scheduler", "task scheduling"),
    ("tokio::runtime::task", "task scheduling"),
    ("tokio::runtime::context", "task scheduling"),
    ("tokio::runtime::io", "socket readiness"),
    ("tokio::net", "socket readiness"),
    ("mio::", "socket readiness"),
    ("hyper::upgrade", "socket readiness"),
    ("tokio::time", "timers"),
    ("tokio::runtime::time", "timers"),
    ("tokio_tungstenite", "WebSocket framing and stream adapters"),
    ("tungstenite", "WebSocket framing and stream adapters"),
    ("bilock", "WebSocket framing and stream adapters"),
    ("atomic_waker", "WebSocket framing and stream adapters"),
    ("SplitSink", "WebSocket framing and stream adapters"),
    ("gateway::ws::writer", "writer task"),
    ("PollFn", "writer task"),
    ("core::pin::Pin", "writer task"),
    ("prometheus", "metrics"),
    ("redis", "Redis client"),
    ("deadpool", "Redis client"),
    ("combine", "Redis client"),
    ("malloc", "allocation"),
    ("free", "allocation"),
    ("memmove", "copies"),
    ("memcpy", "copies"),
    ("__send", "libc send"),
    ("clock_gettime", "clock"),
    ("Instant", "clock"),
    ("SystemTime", "clock"),
    ("Timespec", "clock"),
]


def samples(lines):
    stack = []
    for line in lines:
        m = FRAME.match(line.rstrip("\n"))
        if m:
            stack.append((m.group(1), m.group(2)))
        elif stack:
            yield stack
            stack = []
    if stack:
        yield stack


def group(stack):
    sym, dso = stack[0]
    if "kernel" in dso:
        syms = [s for s, _ in stack]
        softirq = any("net_rx_action" in s for s in syms)
        for pattern, name in SYSCALLS:
            if any(pattern in s for s in syms):
                return "kernel: " + name + (" (receiving side, softirq)" if softirq else "")
        return "kernel: other"
    for pattern, name in USER:
        if pattern in sym:
            return "user: " + name
    return "user: other"


def main():
    counts = collections.Counter(group(s) for s in samples(sys.stdin))
    total = sum(counts.values())
    if not total:
        sys.exit("no samples")
    for name, n in counts.most_common():
        print(f"{100 * n / total:5.1f} %  {name}")
    print(f"{total} samples")


if __name__ == "__main__":
    main()
