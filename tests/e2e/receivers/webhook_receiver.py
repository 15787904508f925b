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

With --slack-token it also answers like Slack's Web API on /api/chat.postMessage and
/api/chat.update (200 with {"ok": true, "channel": "C...", "ts": "..."}; {"ok": false, "error":
"invalid_auth"} without the bearer token, "channel_not_found" for a channel other than
#incidents / C0INCIDENTS, "message_not_found" for an update of a ts never posted), and answers
/hook like an incoming webhook (200 "ok").

Usage: python webhook_receiver.py [--secret whsec_...] [--pagerduty] [--slack-token xoxb-...];
prints "listening <port>".
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


SLACK_CHANNELS = {"#incidents": "C0INCIDENTS", "C0INCIDENTS": "C0INCIDENTS"}
posted = {}  # ts -> channel id of every message posted through chat.postMessage


def make_handler(verifier, pagerduty, slack_token):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def reply(self, status, body, headers=()):
            data = body.encode()
            self.send_response(status)
            kind = "application/json" if body.startswith("{") else "text/plain"
            self.send_header("Content-Type", kind)
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
            if slack_token is not None and self.path.startswith("/api/"):
                return self.slack_api(body)
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

        def slack_api(self, body):
            method = self.path[len("/api/"):]
            authorized = self.headers.get("Authorization") == f"Bearer {slack_token}"
            request = json.loads(body) if body else {}
            with lock:
                answer = answers.pop(0) if answers else None
                if answer is None:
                    reply = slack_reply(method, request, authorized)
                    answer = {"status": 200, "body": json.dumps(reply)}
                received.append({
                    "method": method,
                    "authorized": authorized,
                    "contentType": self.headers.get("Content-Type"),
                    "answered": answer.get("status", 200),
                    "reply": json.loads(answer["body"]) if answer.get("status", 200) == 200 else None,
                    "receivedAt": time.time(),
                    "body": request,
                })
            extra = []
            if "retryAfter" in answer:
                extra.append(("Retry-After", str(answer["retryAfter"])))
            return self.reply(answer.get("status", 200), answer.get("body", ""), extra)

    return Handler


def slack_reply(method, request, authorized):
    """Slack's answer to a Web API call, as its documentation shows it (lock held)."""
    if not authorized:
        return {"ok": False, "error": "invalid_auth"}
    channel = SLACK_CHANNELS.get(request.get("channel"))
    if channel is None:
        return {"ok": False, "error": "channel_not_found"}
    if not request.get("text") and not request.get("blocks") and not request.get("attachments"):
        return {"ok": False, "error": "no_text"}
    if method == "chat.postMessage":
        thread_ts = request.get("thread_ts")
        if thread_ts is not None and posted.get(thread_ts) != channel:
            return {"ok": False, "error": "thread_not_found"}
        ts = f"{time.time():.6f}"
        while ts in posted:
            ts = f"{float(ts) + 0.000001:.6f}"
        posted[ts] = channel
        message = {"type": "message", "text": request.get("text"), "ts": ts}
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
        return {"ok": True, "channel": channel, "ts": ts, "message": message}
    if method == "chat.update":
        if posted.get(request.get("ts")) != channel:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": channel, "ts": request["ts"], "text": request.get("text")}
    return {"ok": False, "error": "unknown_method"}


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
    parser.add_argument("--slack-token")
    args = parser.parse_args()
    verifier = Webhook(args.secret) if args.secret else None
    handler = make_handler(verifier, args.pagerduty, args.slack_token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
