"""Skyport's launcher: loads an MCP server from a file the way `fastmcp run` does, then either
describes it (inspect) or serves it over streamable HTTP on a socket Skyport bound (serve).

Skyport writes this file into every artifact. It must run on Python 3.10+ with whatever FastMCP
or MCP SDK version the user's dependencies resolved to, so it only uses long-standing APIs and
feature-detects the rest.

  launcher.py inspect TARGET OBJECT|- RESULT_JSON [IMPORT_PATH...]
  launcher.py serve TARGET OBJECT|- [IMPORT_PATH...]
      (listening socket on fd $SKYPORT_LISTEN_FD, else $SKYPORT_HOST:$SKYPORT_PORT)

TARGET is a .py file or module:PACKAGE.MODULE; IMPORT_PATHs go first on sys.path.
"""

import asyncio
import importlib.util
import inspect
import json
import os
import socket
import sys
import traceback

DEFAULT_OBJECTS = ("mcp", "server", "app")
MODULE_NAME = "server_module"  # the name `fastmcp run` gives the imported file


class Failure(Exception):
    """A problem with the user's server, classified for the build log."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


def user_traceback(exc, limit=12):
    """The traceback without the launcher's own frames."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename != __file__ and not f.filename.startswith("<frozen ")
    ]
    lines = traceback.format_list(frames[-limit:])
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip()


def load_module(target):
    if target.startswith("module:"):
        name = target[len("module:"):]
        path = name
        load = lambda: importlib.import_module(name)  # noqa: E731
    else:
        path = target
        directory = os.path.dirname(os.path.abspath(path))
        if directory not in sys.path:
            sys.path.insert(0, directory)
        # The absolute path gives the module a stable __file__; messages keep the path as given.
        spec = importlib.util.spec_from_file_location(MODULE_NAME, os.path.abspath(path))
        if spec is None or spec.loader is None:
            raise Failure("entrypoint", f"{path} cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module

        def load():
            spec.loader.exec_module(module)
            return module

    try:
        return load()
    except SyntaxError as e:
        where = os.path.relpath(e.filename or path)
        text = (e.text or "").rstrip("\n")
        pointer = ""
        if text and e.offset:
            pointer = "\n    " + text.strip() + "\n    " + " " * max(0, e.offset - 1 - (len(text) - len(text.lstrip()))) + "^"
        raise Failure("syntax", f"syntax error in {where} at line {e.lineno}: {e.msg}{pointer}")
    except ModuleNotFoundError as e:
        raise Failure(
            "import",
            f"importing {path} failed: no module named '{e.name}'. Add the package that provides it "
            f"to requirements.txt or pyproject.toml.\n{user_traceback(e)}",
        )
    except BaseException as e:  # any failure while importing user code is the user's to see
        raise Failure("import", f"importing {path} raised {type(e).__name__}: {e}\n{user_traceback(e)}")


def server_kinds():
    """The server classes available in this environment, as (kind, class) pairs."""
    kinds = []
    try:
        from fastmcp import FastMCP

        kinds.append(("fastmcp", FastMCP))
    except Exception:
        pass
    for module_name, class_name in (("mcp.server.mcpserver", "MCPServer"), ("mcp.server.fastmcp", "FastMCP")):
        try:
            module = importlib.import_module(module_name)
            kinds.append(("mcp-sdk", getattr(module, class_name)))
        except Exception:
            pass
    return kinds


def kind_of(obj):
    for kind, cls in server_kinds():
        if isinstance(obj, cls):
            return kind
    return None


def find_object(module, path, name):
    if name is None:
        for candidate in DEFAULT_OBJECTS:
            obj = getattr(module, candidate, None)
            if obj is not None and kind_of(obj):
                return candidate, obj
        servers = [n for n, v in vars(module).items() if not n.startswith("_") and kind_of(v)]
        hint = f" It defines {', '.join(servers)}: deploy with --entrypoint {path}:{servers[0]}." if servers else ""
        raise Failure(
            "entrypoint",
            f"no server object found in {path}: looked for a FastMCP server named {', '.join(DEFAULT_OBJECTS)}.{hint}",
        )
    if not hasattr(module, name):
        servers = [n for n, v in vars(module).items() if not n.startswith("_") and kind_of(v)]
        hint = f" Server objects in it: {', '.join(servers)}." if servers else " It defines no FastMCP server object."
        raise Failure("entrypoint", f"{path} has no object named '{name}'.{hint}")
    return name, getattr(module, name)


async def resolve(module, path, name):
    name, obj = find_object(module, path, name)
    factory = inspect.isfunction(obj) or inspect.iscoroutinefunction(obj)
    if factory:
        try:
            obj = obj()
            if inspect.isawaitable(obj):
                obj = await obj
        except Exception as e:
            raise Failure("import", f"factory function '{name}' in {path} raised {type(e).__name__}: {e}\n{user_traceback(e)}")
    kind = kind_of(obj)
    if kind is None:
        what = f"a function returning {type(obj).__name__}" if factory else f"a {type(obj).__name__}"
        raise Failure(
            "not_a_server",
            f"'{name}' in {path} is {what}, not a FastMCP server (or a function returning one)",
        )
    return name, kind, obj


def versions():
    from importlib import metadata

    found = {"python": ".".join(map(str, sys.version_info[:3]))}
    for dist in ("fastmcp", "mcp"):
        try:
            found[dist] = metadata.version(dist)
        except Exception:
            pass
    return found


async def describe(kind, obj):
    if kind == "fastmcp":
        from fastmcp import Client
    else:
        from mcp import Client
    async with Client(obj) as client:
        init = getattr(client, "initialize_result", None)
        # FastMCP 3+ exposes the server's Implementation directly (and leaves initialize_result
        # empty for in-memory clients); older clients only have it on the initialize result.
        info = getattr(client, "server_info", None)
        if info is None or callable(info):
            info = getattr(init, "serverInfo", None) or getattr(init, "server_info", None)
        tools = await client.list_tools()
        resources = await client.list_resources()
        templates = await client.list_resource_templates()
        prompts = await client.list_prompts()

    def items(result, attr):
        return getattr(result, attr, result)

    return {
        "server": {
            "name": getattr(info, "name", None) or getattr(obj, "name", None),
            "version": getattr(info, "version", None),
        },
        "tools": [{"name": t.name, "description": t.description} for t in items(tools, "tools")],
        "resources": [{"uri": str(r.uri), "name": r.name} for r in items(resources, "resources")],
        "resource_templates": [
            {"uri_template": str(getattr(t, "uriTemplate", None) or getattr(t, "uri_template", "")), "name": t.name}
            for t in items(templates, "resourceTemplates" if hasattr(templates, "resourceTemplates") else "resource_templates")
        ],
        "prompts": [{"name": p.name, "description": p.description} for p in items(prompts, "prompts")],
    }


async def inspect_server(path, name):
    module = load_module(path)
    name, kind, obj = await resolve(module, path, name)
    try:
        description = await describe(kind, obj)
    except Failure:
        raise
    except BaseException as e:
        raise Failure("inspection", f"starting {path}:{name} and listing its tools failed with {type(e).__name__}: {e}\n{user_traceback(e)}")
    return {"ok": True, "object": name, "kind": kind, "versions": versions(), **description}


def inspect_main(path, name, result_path):
    try:
        result = asyncio.run(inspect_server(path, None if name == "-" else name))
    except Failure as f:
        result = {"ok": False, "kind": f.kind, "message": f.message}
    with open(result_path, "w") as out:
        json.dump(result, out)
    # Threads the server started at import time must not keep the build waiting.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def accepts(function, parameter):
    try:
        return parameter in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def serve_main(path, name):
    """Serves on the socket Skyport bound (fd $SKYPORT_LISTEN_FD) or, without one, binds
    $SKYPORT_HOST:$SKYPORT_PORT itself (a Kubernetes pod, where the Service reaches the pod's
    address, or an artifact run by hand, on loopback by default)."""
    port = int(os.environ.get("SKYPORT_PORT", "8000"))
    host = os.environ.get("SKYPORT_HOST", "127.0.0.1")
    fd = os.environ.get("SKYPORT_LISTEN_FD")
    sock = socket.socket(fileno=int(fd)) if fd else None
    try:
        module = load_module(path)
        name, kind, obj = asyncio.run(resolve(module, path, None if name == "-" else name))
    except Failure as f:
        print(f"skyport: {f.message}", file=sys.stderr, flush=True)
        sys.exit(3)
    options = dict(transport="http", host=host, port=port, path="/mcp", show_banner=False)
    run_http = getattr(obj, "run_http_async", None)
    if kind == "fastmcp" and accepts(run_http, "uvicorn_config"):
        # Skyport's audit log records every request; an access line per request from uvicorn
        # would repeat it, cost the instance CPU and push the server's own lines out of the
        # log retention.
        options["uvicorn_config"] = {"access_log": False}
    if kind == "fastmcp" and sock is not None and accepts(run_http, "sockets"):
        obj.run(**options, sockets=[sock])
    elif kind == "fastmcp":
        if sock is not None:
            # Older FastMCP cannot take a bound socket: hand the port back and let it bind again.
            sock.close()
        obj.run(**options)
    else:
        import uvicorn

        app = obj.streamable_http_app()
        config = uvicorn.Config(
            app, host=host, port=port, lifespan="on", log_level="info", access_log=False
        )
        server = uvicorn.Server(config)
        asyncio.run(server.serve(sockets=[sock] if sock is not None else None))


def main(argv):
    if len(argv) >= 5 and argv[1] == "inspect":
        sys.path[0:0] = argv[5:]
        inspect_main(argv[2], argv[3], argv[4])
    elif len(argv) >= 4 and argv[1] == "serve":
        sys.path[0:0] = argv[4:]
        serve_main(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
