"""Skyport's zygote: a Python interpreter of one environment that has already imported the MCP
server stack and forks new instances on request, so an instance skips interpreter start-up and
those imports.

Protocol on the SOCK_SEQPACKET socket at fd $SKYPORT_ZYGOTE_FD, one message per packet:
  request:  b"start\\0ID\\0CWD\\0CGROUP_PROCS\\0RLIMIT_AS\\0READ_ONLY\\0N\\0ARG*N\\0M\\0KEY=VALUE*M"
            with three descriptors attached: listening socket, stdout, stderr
  replies:  b"ready"                       once, after the imports
            b"started ID PID"              the instance was forked
            b"failed ID MESSAGE"           it was not
            b"exit PID CODE"               an instance ended (negative: killed by that signal)
The zygote stays single-threaded (fork is only safe then) and exits when the socket closes.
"""

import ctypes
import os
import resource
import runpy
import selectors
import signal
import socket
import sys
import threading

PRELOAD = ("fastmcp", "mcp", "uvicorn", "starlette", "pydantic", "httpx", "anyio")
PR_SET_PDEATHSIG = 1
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18


def preload():
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - an environment without it just forks less warm
            pass
    # `import fastmcp` is lazy: most of what serving needs (the HTTP app, the protocol handlers,
    # uvicorn's protocol classes, tool schemas) is imported on first use. Build, but never run, a
    # throwaway server the way the launcher does, so those imports happen here once.
    try:
        import fastmcp
        import uvicorn

        warm = fastmcp.FastMCP("skyport-zygote-warmup")

        @warm.tool
        def echo(text: str) -> str:
            return text

        @warm.resource("resource://warmup")
        def about() -> str:
            return "warmup"

        @warm.prompt
        def greet(name: str) -> str:
            return name

        app = warm.http_app(path="/mcp", transport="http")
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning").load()
    except Exception:  # noqa: BLE001 - older or newer FastMCP: fork what imported
        pass


def read_only(libc, path):
    """Best effort, as for spawned instances: a private mount namespace with PATH read-only."""
    target = path.encode()
    if libc.unshare(CLONE_NEWNS) != 0:
        return
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return
    if libc.mount(target, target, None, MS_BIND | MS_REC, None) != 0:
        return
    libc.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)


def become_instance(libc, zygote_pid, fields, fds):
    """In the forked child: set up like a spawned instance, then run its program."""
    _, _, cwd, procs, rlimit, ro = fields[:6]
    argc = int(fields[6])
    args = fields[7 : 7 + argc]
    envc = int(fields[7 + argc])
    env = dict(kv.split("=", 1) for kv in fields[8 + argc : 8 + argc + envc])
    listen, out, err = fds
    if procs:
        with open(procs, "w") as f:
            f.write("0")
    if rlimit:
        resource.setrlimit(resource.RLIMIT_AS, (int(rlimit), int(rlimit)))
    os.setsid()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote_pid:
        os._exit(1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.dup2(listen, 3)
    os.closerange(4, 65536)
    os.chdir(cwd)
    if ro:
        read_only(libc, ro)
        os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = args
    sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
    code = 0
    try:
        runpy.run_path(args[0], run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - report like an uncaught exception would
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main():
    control = socket.socket(fileno=int(os.environ.pop("SKYPORT_ZYGOTE_FD")))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    libc.unshare.argtypes = [ctypes.c_int]
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    preload()
    if threading.active_count() != 1:
        control.send(b"unsafe the preloaded modules started threads")
        return
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    zygote_pid = os.getpid()
    control.send(b"ready")
    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                data, fds, _, _ = socket.recv_fds(control, 65536, 3)
                if not data:
                    return
                fields = data.decode().split("\0")
                ident = fields[1] if len(fields) > 1 else "?"
                try:
                    pid = os.fork()
                except OSError as e:
                    control.send(f"failed {ident} cannot fork: {e}".encode())
                    pid = None
                if pid == 0:
                    selector.close()
                    control.close()
                    try:
                        become_instance(libc, zygote_pid, fields, fds)
                    except BaseException as e:  # noqa: BLE001 - the child must never return
                        try:
                            os.write(2, f"skyport: cannot start the instance: {e}\n".encode())
                        finally:
                            os._exit(127)
                for fd in fds:
                    os.close(fd)
                if pid:
                    control.send(f"started {ident} {pid}".encode())
            else:
                os.read(wake_r, 4096)
                while True:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    control.send(f"exit {pid} {os.waitstatus_to_exitcode(status)}".encode())


if __name__ == "__main__":
    main()
