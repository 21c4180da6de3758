"""Runs the trigger twin in a process of its own (the crash test kills it with SIGKILL).

Usage: ``python trigger_child.py <config.json>`` where the config names the DynamoDB Local port, the
table, the data dir, the batch size, the parallelization factor (default 1) and the fixture handler's
environment, or ``real_processor`` for the template's function.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from dataclasses import replace
from pathlib import Path

from backend.local.esm_config import load_esm_config
from backend.local.local_template import local_template
from backend.local.trigger import Trigger
from backend.settings import load_settings
from backend.template import LocalValues, Template

HERE = Path(__file__).resolve().parent


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings(
        dynamodb_port=config["dynamodb_port"],
        table=config["table"],
        data_dir=Path(config["data_dir"]),
        STREAMDESK_API_KEY="test-key-0123456789",
    )
    template = Template.load(local=LocalValues(refs={"RequestsTable": config["table"]}))
    esm = load_esm_config(local_template(settings, template))
    function = esm.function  # "real_processor": the template's function, the real processor
    if not config.get("real_processor"):
        function = replace(
            esm.function,
            code_dir=HERE,
            handler="trigger_fixture_handlers.handler",
            environment={**esm.function.environment, **config["environment"]},
        )
    esm = replace(
        esm,
        function=function,
        batch_size=config["batch_size"],
        parallelization_factor=config.get("parallelization_factor", 1),
        filter_patterns=(),
    )
    Trigger(settings, template, esm=esm).run(threading.Event())


if __name__ == "__main__":
    main()
