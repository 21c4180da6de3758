"""The API twin's SigV4 signer gives exactly botocore's signature for the same request and time."""

from __future__ import annotations

import time

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from backend.local.sigv4 import PostSigner


def test_signature_matches_botocore() -> None:
    url = "http://127.0.0.1:8123/"
    body = b'{"TableName": "t", "Item": {"id": {"S": "\\u00e9"}}}'
    target, content_type = "DynamoDB_20120810.PutItem", "application/x-amz-json-1.0"
    now = time.time()
    ours = PostSigner(url, "AKID", "secret", "eu-west-1", "dynamodb").headers(target, content_type, body, now)

    request = AWSRequest(method="POST", url=url, data=body, headers={
        "X-Amz-Target": target, "Content-Type": content_type, "X-Amz-Date": ours["X-Amz-Date"]})  # fmt: skip
    request.context["timestamp"] = ours["X-Amz-Date"]
    auth = SigV4Auth(Credentials("AKID", "secret"), "dynamodb", "eu-west-1")
    string_to_sign = auth.string_to_sign(request, auth.canonical_request(request))
    expected = auth.signature(string_to_sign, request)

    assert ours["Authorization"].endswith(f"Signature={expected}")
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-target" in ours["Authorization"]
    assert auth.signed_headers(auth.headers_to_sign(request)) == "content-type;host;x-amz-date;x-amz-target"
