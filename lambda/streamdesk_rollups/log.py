"""The function's one structured logger (Powertools: JSON lines with the Lambda context injected)."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

DEFAULT_SERVICE = "streamdesk-rollups"

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE)
