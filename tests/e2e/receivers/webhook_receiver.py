"""A webhook receiver for the e2e tests, on 127.0.0.1 only.

It verifies every request's Standard Webhooks signature with the `standardwebhooks` package (the
reference implementation, not ours), records what arrived, and answers as the test scripts it:

  POST /hook       a delivery (also /v2/enqueue, PagerDuty's path); answered with the next
                   scripted answer (default 200 "ok")
  POST /script     {"answers": [{"status": 500}, {"status": 429, "retryAfter": 2},
                    {"status": 400, "body": "invalid_payload"}, {"hang": 20}]}  appended in order
  GET  /received   every delivery so far: id, timestamp, verified, verifyError, status answered, body

With --pagerduty it answers like the PagerDuty Events API v2 by default: 202 with
{"status": "success", "message": "Event processed", "dedup_key": ...}.

Usage: python webhook_receiver.py [--secret whsec_...] [--pagerduty]; prints "listening <port>".
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY = 1024 * 1024

lock = threading.Lock()
received = []
answers = []


def make_handler(verifier, pagerduty):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def reply(self, status, body, headers=()):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def read_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ValueError("body too large")
            return self.rfile.read(length)

        def do_GET(self):
            if self.path != "/received":
                return self.reply(404, "not found")
            with lock:
                data = json.dumps(received)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data.encode())))
            self.end_headers()
            self.wfile.write(data.encode())

        def do_POST(self):
            body = self.read_body()
            if self.path == "/script":
                with lock:
                    answers.extend(json.loads(body)["answers"])
                return self.reply(200, "scripted")
            if self.path not in ("/hook", "/v2/enqueue"):
                return self.reply(404, "not found")
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified, error = None, None
            if verifier is not None:
                try:
                    verifier.verify(body, headers)
                    verified = True
                except WebhookVerificationError as e:
                    verified, error = False, str(e)
            with lock:
                answer = answers.pop(0) if answers else default_answer(body, pagerduty)
                record = {
                    "id": headers.get("webhook-id"),
                    "timestamp": headers.get("webhook-timestamp"),
                    "signature": headers.get("webhook-signature"),
                    "contentType": headers.get("content-type"),
                    "verified": verified,
                    "verifyError": error,
                    "answered": answer.get("status", 200) if "hang" not in answer else "hang",
                    "receivedAt": time.time(),
                    "body": json.loads(body) if body else None,
                }
                received.append(record)
            if "hang" in answer:
                time.sleep(answer["hang"])
                return self.reply(200, "ok")
            extra = []
            if "retryAfter" in answer:
                extra.append(("Retry-After", str(answer["retryAfter"])))
            return self.reply(answer.get("status", 200), answer.get("body", "ok"), extra)

    return Handler


def default_answer(body, pagerduty):
    if not pagerduty:
        return {"status": 200}
    dedup_key = (json.loads(body) if body else {}).get("dedup_key")
    reply = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
    return {"status": 202, "body": json.dumps(reply)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret")
    parser.add_argument("--pagerduty", action="store_true")
    args = parser.parse_args()
    verifier = Webhook(args.secret) if args.secret else None
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(verifier, args.pagerduty))
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
