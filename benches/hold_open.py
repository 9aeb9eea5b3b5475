#!/usr/bin/env python3
"""Open N files on a mount, hold them all open, report the daemon's memory.

Usage: hold_open.py create DIR N          (make DIR/o00000 .. N files of 100 bytes)
       hold_open.py hold DIR N PID [LABEL] (open them all, read 1 byte of each,
                                            then print the daemon's VmHWM/VmRSS)

Output of `hold` (fsbench format, one metric per line):
    LABEL open_files   COUNT   files   (how many opens succeeded)
    LABEL rss_open10k  VMHWM   kB      (peak RSS of PID while they are open)
    LABEL rssnow_open10k VMRSS kB      (current RSS of PID while they are open)
and a '#' comment with the first error, if an open failed.
"""
import os
import resource
import sys


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()[0] if v.split() else ""
    return out


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    cmd, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "create":
        os.makedirs(d, exist_ok=True)
        payload = bytes(range(100))
        for i in range(n):
            with open(os.path.join(d, f"o{i:05d}"), "wb") as f:
                f.write(payload)
        return
    if cmd != "hold" or len(sys.argv) < 5:
        sys.exit(__doc__)
    pid = int(sys.argv[4])
    label = sys.argv[5] if len(sys.argv) > 5 else "fs"
    # Our own descriptor limit must not be what stops us.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        pass
    fds, err = [], None
    for i in range(n):
        try:
            fd = os.open(os.path.join(d, f"o{i:05d}"), os.O_RDONLY)
        except OSError as e:
            err = f"open #{i}: {e}"
            break
        fds.append(fd)
        try:
            os.pread(fd, 1, 0)
        except OSError as e:
            err = f"read #{i}: {e}"
            break
    st = status(pid)
    print(f"{label} open_files {len(fds)} files")
    print(f"{label} rss_open10k {st.get('VmHWM', '0')} kB")
    print(f"{label} rssnow_open10k {st.get('VmRSS', '0')} kB")
    print(f"# {label} daemon_fds_while_held={len(os.listdir(f'/proc/{pid}/fd'))} threads={st.get('Threads')}")
    if err:
        print(f"# {label} hold_open error: {err}")
    for fd in fds:
        os.close(fd)


if __name__ == "__main__":
    main()
