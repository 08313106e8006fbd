#!/usr/bin/env python3
"""Runs a command with a short EEVDF scheduler slice (Linux >= 6.12).

    slice_exec.py SLICE_US COMMAND [ARG...]

Sets sched_attr.sched_runtime (the slice of a SCHED_OTHER task, keeping its
nice value) on this process with sched_setattr(2), then execs COMMAND: the
slice survives exec and threads inherit it. cluster.sh uses it for
DNSPERF_SLICE_US, to tell the load generator's own scheduling delays apart from
the server's (the server sets its slice itself, crates/dns/src/udp.rs).
"""
import ctypes
import os
import struct
import sys

SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}


def main() -> None:
    slice_us, command = int(sys.argv[1]), sys.argv[2:]
    nr = SYS_SCHED_SETATTR.get(os.uname().machine)
    if slice_us > 0 and nr is not None:
        nice = os.getpriority(os.PRIO_PROCESS, 0)
        # struct sched_attr, SCHED_ATTR_SIZE_VER0 (48 bytes), SCHED_OTHER.
        attr = struct.pack("IIQiIQQQ", 48, 0, 0, nice, 0, slice_us * 1000, 0, 0)
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(attr, len(attr))
        if libc.syscall(nr, 0, buf, 0) != 0:
            print(f"sched_setattr: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
