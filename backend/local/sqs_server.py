"""The SQS twin: SQS's JSON protocol over HTTP on 127.0.0.1, backed by :mod:`backend.local.sqs_store`.

boto3 (botocore 1.34.x and later) speaks SQS's JSON protocol: ``POST /`` with ``X-Amz-Target:
AmazonSQS.<Operation>`` and a JSON body; errors are ``{"__type": "com.amazonaws.sqs#<Code>", "message"}``
with the ``x-amzn-query-error`` header botocore reads for the query-compatible code. The same boto3 code
runs on AWS and here (``AWS_ENDPOINT_URL_SQS`` or an injected client). Like DynamoDB Local, it accepts
any credentials; it listens on 127.0.0.1 only. Operations: the ones the project uses (CreateQueue,
GetQueueUrl, SendMessage, ReceiveMessage, DeleteMessage, DeleteMessageBatch, ChangeMessageVisibility,
GetQueueAttributes, ListQueues); anything else answers ``UnsupportedOperation``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from backend.local.sqs_store import QueueStore, Received, SqsError, settings_from_attributes

log = logging.getLogger("streamdesk.sqs")

TARGET_PREFIX: Final = "AmazonSQS."
ACCOUNT_ID: Final = "000000000000"
# The system attributes a ReceiveMessage may ask for, and what "All" returns.
_SYSTEM_ATTRIBUTES: Final = (
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SentTimestamp",
    "SenderId",
)


class SqsTwin:
    """The operations, on one store; ``base_url`` is what queue URLs start with."""

    def __init__(self, store: QueueStore, base_url: str, region: str, stop: threading.Event) -> None:
        self.store = store
        self.base_url = base_url.rstrip("/")
        self.region = region
        self._stop = stop
        self._operations: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
            "CreateQueue": self.create_queue,
            "GetQueueUrl": self.get_queue_url,
            "ListQueues": self.list_queues,
            "SendMessage": self.send_message,
            "ReceiveMessage": self.receive_message,
            "DeleteMessage": self.delete_message,
            "DeleteMessageBatch": self.delete_message_batch,
            "ChangeMessageVisibility": self.change_message_visibility,
            "GetQueueAttributes": self.get_queue_attributes,
        }

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        handler = self._operations.get(operation)
        if handler is None:
            raise SqsError("UnsupportedOperation", f"The SQS twin does not implement {operation}.")
        return handler(params)

    # ------------------------------------------------------------------------------------- names
    def queue_url(self, name: str) -> str:
        return f"{self.base_url}/{ACCOUNT_ID}/{name}"

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{name}"

    @staticmethod
    def _name_of_url(params: Mapping[str, Any]) -> str:
        url = params.get("QueueUrl")
        if not isinstance(url, str) or not url:
            raise SqsError("MissingParameter", "The request must contain the parameter QueueUrl.")
        return url.rstrip("/").rsplit("/", 1)[-1]

    @staticmethod
    def _name_of_arn(arn: str) -> str:
        return arn.rsplit(":", 1)[-1]

    # -------------------------------------------------------------------------------- operations
    def create_queue(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = str(params.get("QueueName", ""))
        if not name:
            raise SqsError("MissingParameter", "The request must contain the parameter QueueName.")
        settings = settings_from_attributes(params.get("Attributes") or {}, self._name_of_arn)
        self.store.create_queue(name, settings)
        return {"QueueUrl": self.queue_url(name)}

    def get_queue_url(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = str(params.get("QueueName", ""))
        self.store.settings(name)
        return {"QueueUrl": self.queue_url(name)}

    def list_queues(self, params: Mapping[str, Any]) -> dict[str, Any]:
        prefix = str(params.get("QueueNamePrefix", ""))
        urls = [self.queue_url(name) for name in self.store.queue_names() if name.startswith(prefix)]
        return {"QueueUrls": urls} if urls else {}

    def send_message(self, params: Mapping[str, Any]) -> dict[str, Any]:
        message_id, digest = self.store.send(
            self._name_of_url(params), str(params.get("MessageBody", "")), int(params.get("DelaySeconds", 0))
        )
        return {"MessageId": message_id, "MD5OfMessageBody": digest}

    def receive_message(self, params: Mapping[str, Any]) -> dict[str, Any]:
        visibility = params.get("VisibilityTimeout")
        received = self.store.receive(
            self._name_of_url(params),
            max_messages=int(params.get("MaxNumberOfMessages", 1)),
            visibility_timeout=int(visibility) if visibility is not None else None,
            wait_seconds=float(params.get("WaitTimeSeconds", 0)),
            stop=self._stop,
        )
        wanted = {*params.get("AttributeNames", ()), *params.get("MessageSystemAttributeNames", ())}
        if "All" in wanted:
            wanted = set(_SYSTEM_ATTRIBUTES)
        messages = [_message(message, wanted) for message in received]
        return {"Messages": messages} if messages else {}

    def delete_message(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self.store.delete(self._name_of_url(params), str(params.get("ReceiptHandle", "")))
        return {}

    def delete_message_batch(self, params: Mapping[str, Any]) -> dict[str, Any]:
        queue = self._name_of_url(params)
        successful, failed = [], []
        for entry in params.get("Entries") or []:
            try:
                self.store.delete(queue, str(entry.get("ReceiptHandle", "")))
            except SqsError as error:
                failed.append(
                    {"Id": entry.get("Id"), "SenderFault": True, "Code": error.code, "Message": error.message}
                )
            else:
                successful.append({"Id": entry.get("Id")})
        return {"Successful": successful, "Failed": failed}

    def change_message_visibility(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self.store.change_visibility(
            self._name_of_url(params), str(params.get("ReceiptHandle", "")), int(params["VisibilityTimeout"])
        )
        return {}

    def get_queue_attributes(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = self._name_of_url(params)
        settings = self.store.settings(name)
        depth = self.store.depth(name)
        attributes = {
            "QueueArn": self.queue_arn(name),
            "ApproximateNumberOfMessages": str(depth.visible),
            "ApproximateNumberOfMessagesNotVisible": str(depth.in_flight),
            "ApproximateNumberOfMessagesDelayed": "0",
            "VisibilityTimeout": str(settings.visibility_timeout),
            "MessageRetentionPeriod": str(settings.retention_seconds),
            "CreatedTimestamp": str(self.store.created_ms(name) // 1000),
        }
        if settings.dead_letter_queue and settings.max_receive_count:
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": self.queue_arn(settings.dead_letter_queue),
                    "maxReceiveCount": settings.max_receive_count,
                }
            )
        wanted = set(params.get("AttributeNames") or ())
        if "All" not in wanted:
            attributes = {key: value for key, value in attributes.items() if key in wanted}
        return {"Attributes": attributes} if attributes else {}


def _message(message: Received, wanted: set[str]) -> dict[str, Any]:
    system = {
        "ApproximateReceiveCount": str(message.receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.first_receive_ms),
        "SentTimestamp": str(message.sent_at_ms),
        "SenderId": ACCOUNT_ID,
    }
    shaped: dict[str, Any] = {
        "MessageId": message.message_id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.md5_of_body,
        "Body": message.body,
    }
    attributes = {key: value for key, value in system.items() if key in wanted}
    if attributes:
        shaped["Attributes"] = attributes
    return shaped


def _handler_class(twin: SqsTwin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            target = self.headers.get("X-Amz-Target", "")
            try:
                if not target.startswith(TARGET_PREFIX):
                    raise SqsError("InvalidAction", "Only SQS's JSON protocol (X-Amz-Target) is served.")
                try:
                    params = json.loads(raw or b"{}")
                except ValueError:
                    raise SqsError("SerializationException", "The request body is not JSON.") from None
                answer = twin.call(target[len(TARGET_PREFIX) :], params)
            except SqsError as error:
                self._send(
                    error.status,
                    {"__type": f"com.amazonaws.sqs#{error.code}", "message": error.message},
                    {"x-amzn-query-error": f"{error.query_code};Sender"},
                )
                return
            except Exception as error:  # a bug: answered as AWS would, logged here
                log.exception("SQS twin error")
                self._send(500, {"__type": "com.amazonaws.sqs#InternalError", "message": str(error)}, {})
                return
            self._send(200, answer, {})

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The caller went away (killed mid long poll): what it received stays hidden for the
                # visibility timeout and then comes back, as on SQS.
                log.info("SQS twin: the caller hung up before the answer")

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Handler


class SqsServer:
    """The twin serving on ``host:port`` in a background thread (``serve_forever`` for a process)."""

    def __init__(self, store: QueueStore, host: str, port: int, region: str) -> None:
        self.stop_event = threading.Event()
        # Bound first (port 0 picks a free one), so that queue URLs carry the real port.
        self._httpd = ThreadingHTTPServer((host, port), BaseHTTPRequestHandler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self.twin = SqsTwin(store, self.url, region, self.stop_event)
        self._httpd.RequestHandlerClass = _handler_class(self.twin)
        self._thread: threading.Thread | None = None

    def start(self) -> SqsServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sqs-twin", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self.stop_event.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
