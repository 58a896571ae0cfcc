"""A loopback HTTP proxy that adds `Authorization: Bearer <token>` to every request.

Usage: bearer_proxy.py UPSTREAM_BASE   (e.g. http://127.0.0.1:7700)
       the token comes from the environment variable MAOS_TOKEN, never the command line.

Why: the MCP conformance CLI (`@modelcontextprotocol/conformance server --url ...`) has
no option to send headers, and MAOS's `/mcp` refuses requests without a capability
token (HTTP 401). This proxy plays the part of an agent that holds a token: it listens
on 127.0.0.1 (a free port), prints `http://127.0.0.1:PORT` on its first stdout line, and
forwards every request unchanged (method, path, body, headers including `Host` and
`Origin`) to UPSTREAM_BASE, adding the bearer unless the request already has an
`Authorization` header. Responses (JSON or SSE streams) are streamed back as they arrive;
each connection serves one request. Test tooling only: nothing in MAOS changes.
"""

import http.client
import http.server
import os
import socketserver
import sys
import urllib.parse

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


class Proxy(http.server.BaseHTTPRequestHandler):
    upstream = None
    bearer = None

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = f"Bearer {self.bearer}"
        if body is not None:
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=300)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            self.send_response_only(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                while True:
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            conn.close()
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = do_HEAD = forward


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    Proxy.upstream = urllib.parse.urlsplit(sys.argv[1])
    Proxy.bearer = os.environ["MAOS_TOKEN"].strip()
    server = Server(("127.0.0.1", 0), Proxy)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
