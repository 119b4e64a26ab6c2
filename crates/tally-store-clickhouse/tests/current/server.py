"""A current ClickHouse release behind the subset of ClickHouse's HTTP interface that
tally's backend uses, for the tests (src/testing.rs, `CurrentServer`).

Debian ships ClickHouse 18.16, what the other tests start; users run current releases. The
only current ClickHouse that installs here is chDB (PyPI `chdb-core`): the ClickHouse
server's own engine, parser and storage built as a library (clickhouse-local), without
the HTTP server. This file is that missing HTTP front, and nothing more: every statement
tally sends is run unchanged by the engine, with the request's settings and database;
answers and errors go back as the real server sends them (the body, `Code: N` in error
texts, the HTTP status). Statements run one at a time (one session, one lock).

    python server.py --port PORT --path DIR

With TALLY_CHDB_TIMES=FILE in its environment, it appends each statement's engine time
and its first 150 characters to FILE (how the 40 ms Nagle stall below was found).
"""

import argparse
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from chdb import session

LOCK = threading.Lock()
SESSION = None
TIMES = open(os.environ["TALLY_CHDB_TIMES"], "a") if os.environ.get("TALLY_CHDB_TIMES") else None
SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# What the session was last set to: a setting or database is sent to the engine only when
# it changes (tally sends the same settings with every request), not four extra statements
# per request.
CURRENT = {"settings": {}, "database": None}


def run(sql, database, settings):
    """Runs one statement; returns the answer's bytes or raises the engine's error."""
    with LOCK:
        for name, value in settings:
            if not SETTING.match(name):
                raise ValueError(f"Code: 115. DB::Exception: Unknown setting {name!r}")
            if CURRENT["settings"].get(name) == value:
                continue
            literal = value if re.fullmatch(r"-?[0-9]+", value) else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
            SESSION.query(f"SET {name} = {literal}")
            CURRENT["settings"][name] = value
        database = database or "default"
        if CURRENT["database"] != database:
            # Forgotten first: when USE fails (no such database), the session's is unknown.
            CURRENT["database"] = None
            SESSION.query(f"USE `{database}`")
            CURRENT["database"] = database
        # The output format is the statement's own FORMAT clause when it has one.
        return SESSION.query(sql, "TabSeparated").bytes()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body are two writes: without this, Nagle's algorithm and the client's
        # delayed ACK hold every answer about 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def answer(self, status, body, code=None):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        if code is not None:
            self.send_header("X-ClickHouse-Exception-Code", str(code))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path in ("/ping", "/"):
            self.answer(200, b"Ok.\n")
        else:
            self.answer(404, b"Code: 0. There is no handle " + url.path.encode() + b"\n")

    def do_POST(self):
        url = urlsplit(self.path)
        params = parse_qsl(url.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        database = None
        settings = []
        query = ""
        for name, value in params:
            if name == "database":
                database = value
            elif name == "query":
                query = value
            else:
                settings.append((name, value))
        sql = query + ("\n" if query and body else "") + body
        try:
            t = time.monotonic()
            out = run(sql, database, settings)
            if TIMES:
                TIMES.write(f"{time.monotonic() - t:.4f} {sql[:150]!r}\n")
                TIMES.flush()
            self.answer(200, out)
        except Exception as e:  # the engine's error, sent as the server sends it
            text = str(e)
            found = re.search(r"Code: (\d+)", text)
            self.answer(500, (text.strip() + "\n").encode(), found.group(1) if found else None)


def main():
    global SESSION
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    args = parser.parse_args()
    SESSION = session.Session(args.path)
    SESSION.query("SET session_timezone = 'UTC'")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
