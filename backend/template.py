"""Reads ``infra/template.yaml`` so that the local stack runs what would be deployed.

The table, the API routes and their VTL, the function's handler and environment, and the event source
mapping's settings all come from here; nothing below restates them. CloudFormation intrinsics that the
template uses (``!Ref``, ``!Sub``, ``!GetAtt``, ``!Join``, ``!If``, ``!Equals``) are resolved against a
small table of local values (:class:`LocalValues`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = PROJECT_ROOT / "infra" / "template.yaml"

# Logical ids in the template that other code relies on. A rename in the template breaks the tests that
# load these, not a user at run time.
TABLE_ID = "RequestsTable"
API_ID = "RequestsApi"
FUNCTION_ID = "ProcessorFunction"
FAILURE_QUEUE_ID = "FailureQueue"
STREAM_EVENT_ID = "RequestsStream"
ROLLUPS_TABLE_ID = "RollupsTable"
ROLLUPS_FUNCTION_ID = "RollupsFunction"
ROLLUPS_STREAM_EVENT_ID = "RollupsStream"
SLOW_WORK_QUEUE_ID = "SlowWorkQueue"
SLOW_WORK_DLQ_ID = "SlowWorkDeadLetterQueue"
SLOW_WORK_FUNCTION_ID = "SlowWorkFunction"
SLOW_WORK_EVENT_ID = "SlowWork"


LOCAL_ACCOUNT_ID = "000000000000"  # the account every local ARN names


class TemplateError(ValueError):
    """The template lacks something the local stack needs, or uses an intrinsic it cannot resolve."""


@dataclass(frozen=True)
class Intrinsic:
    """A CloudFormation short-form tag (``!Ref x``) as read from YAML, before resolution."""

    name: str
    value: Any


class _TemplateLoader(yaml.SafeLoader):
    """A YAML loader that keeps CloudFormation's short-form tags instead of failing on them."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Intrinsic:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if name == "Fn::GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return Intrinsic(name, value)


_TemplateLoader.add_multi_constructor("!", _construct_intrinsic)


def load_raw(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as a dict, short-form tags kept as :class:`Intrinsic` values."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=_TemplateLoader)  # SafeLoader subclass
    if not isinstance(data, dict) or "Resources" not in data:
        raise TemplateError(f"{path} is not a CloudFormation template")
    return data


# Parameters whose default differs on this machine: the demo and test aid `simulate` is off on AWS unless a
# deployment turns it on, and on in the local stack (`make up`, `make demo`, the submit form's examples).
LOCAL_PARAMETER_DEFAULTS = {"AllowSimulate": "true"}


@dataclass(frozen=True)
class LocalValues:
    """What ``!Ref`` / ``!GetAtt`` / pseudo parameters mean on one machine.

    ``refs`` maps a logical id to its local physical name (the table's name, say); ``attributes`` maps
    ``"LogicalId.Attribute"`` to a value. Parameters not overridden take the template's defaults.
    """

    refs: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, str] = field(default_factory=dict)
    region: str = "us-east-1"
    account_id: str = LOCAL_ACCOUNT_ID
    stack_name: str = "streamdesk-local"


class Template:
    """The parsed template plus the resolution of its intrinsics for a local run."""

    def __init__(self, raw: dict[str, Any], local: LocalValues | None = None) -> None:
        self.raw = raw
        self.local = local or LocalValues()
        self.parameters = self._parameter_values()

    @classmethod
    def load(cls, path: Path = TEMPLATE_PATH, local: LocalValues | None = None) -> Template:
        return cls(load_raw(path), local)

    # ----------------------------------------------------------------------------------------- lookup
    def resource(self, logical_id: str) -> dict[str, Any]:
        try:
            resource: dict[str, Any] = self.raw["Resources"][logical_id]
        except KeyError:
            raise TemplateError(f"the template has no resource {logical_id!r}") from None
        return resource

    def properties(self, logical_id: str) -> dict[str, Any]:
        """A resource's properties with every intrinsic resolved."""
        return dict(self.resolve(self.resource(logical_id).get("Properties", {})))

    def parameter(self, name: str) -> str:
        try:
            return self.parameters[name]
        except KeyError:
            raise TemplateError(f"the template has no parameter {name!r}") from None

    def int_parameter(self, name: str) -> int:
        return int(self.parameter(name))

    def _parameter_values(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for name, spec in (self.raw.get("Parameters") or {}).items():
            if name in self.local.parameters:
                values[name] = str(self.local.parameters[name])
            elif name in LOCAL_PARAMETER_DEFAULTS:
                values[name] = LOCAL_PARAMETER_DEFAULTS[name]
            elif "Default" in spec:
                values[name] = str(spec["Default"])
        return values

    # ------------------------------------------------------------------------------------- resolution
    def _pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": self.local.region,
            "AWS::AccountId": self.local.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.local.stack_name,
            "AWS::NoValue": "",
        }

    def ref(self, name: str) -> str:
        pseudo = self._pseudo()
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.local.refs:
            return self.local.refs[name]
        if name in self.raw["Resources"]:
            # An unmapped resource resolves to a recognisable placeholder: it is only ever shown.
            return f"local-{name}"
        raise TemplateError(f"!Ref {name}: no such parameter or resource")

    def get_att(self, logical_id: str, attribute: str) -> str:
        key = f"{logical_id}.{attribute}"
        if key in self.local.attributes:
            return self.local.attributes[key]
        if logical_id not in self.raw["Resources"]:
            raise TemplateError(f"!GetAtt {key}: no such resource")
        return f"arn:aws:local:{self.local.region}:{self.local.account_id}:{logical_id}/{attribute}"

    def condition(self, name: str) -> bool:
        spec = (self.raw.get("Conditions") or {}).get(name)
        if spec is None:
            raise TemplateError(f"no condition {name!r}")
        return bool(self.resolve(spec))

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic inside ``value`` (long or short form)."""
        if isinstance(value, Intrinsic):
            return self._resolve_intrinsic(value.name, value.value)
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, inner),) = value.items()
                if key == "Ref" or (key.startswith("Fn::") and key != "Fn::Transform"):
                    return self._resolve_intrinsic(key, inner)
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def _resolve_intrinsic(self, name: str, arg: Any) -> Any:
        if name == "Ref":
            return self.ref(str(self.resolve(arg)))
        if name == "Fn::GetAtt":
            parts = self.resolve(arg)
            if isinstance(parts, str):
                parts = parts.split(".", 1)
            return self.get_att(parts[0], parts[1])
        if name == "Fn::Sub":
            return self._sub(arg)
        if name == "Fn::Join":
            sep, items = self.resolve(arg)
            return str(sep).join(str(i) for i in items)
        if name == "Fn::If":
            cond, yes, no = arg
            return self.resolve(yes if self.condition(cond) else no)
        if name == "Fn::Equals":
            left, right = self.resolve(arg)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self.resolve(arg[0])
        if name == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        raise TemplateError(f"{name} is not supported by the local stack")

    _SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, extra = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, extra = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} is how !Sub escapes a literal ${...}
            if name in extra:
                return str(extra[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(name)

        return self._SUB_VARIABLE.sub(replace, str(text))


@cache
def default_raw_template() -> dict[str, Any]:
    """The project's template, parsed once per process (it does not change while the stack runs)."""
    return load_raw(TEMPLATE_PATH)
