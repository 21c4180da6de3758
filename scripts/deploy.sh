#!/usr/bin/env bash
# Deploy Streamdesk to AWS from infra/template.yaml with the SAM CLI (`make deploy`).
#
#   STREAMDESK_STACK   stack name [streamdesk]
#   AWS_REGION         region (else AWS_DEFAULT_REGION, else your profile's region)
#   AWS_PROFILE        which credentials to use (else the usual chain: environment, SSO, instance role)
#   STREAMDESK_SAM_BUILD_ARGS   extra `sam build` arguments, e.g. "--use-container"
#   STREAMDESK_SAM_DEPLOY_ARGS  extra `sam deploy` arguments, e.g. "--parameter-overrides RetentionDays=30"
#
# destroy.sh sources this file for its prerequisite checks; it runs main only when executed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="infra/template.yaml"
STACK="${STREAMDESK_STACK:-streamdesk}"

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# The Python that has the project installed (boto3 and backend/), for the checks and the outputs.
project_python() {
    if [[ -x "$ROOT/.venv/bin/python" ]]; then
        echo "$ROOT/.venv/bin/python"
    else
        die "no project virtual environment at .venv: run \`make install\` (or \`make up\` once) first."
    fi
}

# The SAM CLI: on PATH, or installed into the project's venv by `pip install -e '.[deploy]'`.
find_sam() {
    if command -v sam >/dev/null 2>&1; then
        command -v sam
    elif [[ -x "$ROOT/.venv/bin/sam" ]]; then
        echo "$ROOT/.venv/bin/sam"
    else
        die "the AWS SAM CLI is not installed. Install it into the project's venv with
    .venv/bin/pip install -e '.[deploy]'
or see https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/install-sam-cli.html"
    fi
}

# Sets AWS_ACCOUNT and AWS_REGION from the credentials in effect, or stops with what to do.
# boto3 (always in the venv) asks STS who we are; the aws CLI is the fallback.
check_credentials() {
    local python answer
    python="$(project_python)"
    if ! answer="$("$python" - <<'PY' 2>&1
import os
import sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError

session = boto3.Session()
# boto3 itself reads AWS_DEFAULT_REGION and the profile, not AWS_REGION.
region = os.environ.get("AWS_REGION") or session.region_name
if not region:
    sys.exit("no AWS region: set AWS_REGION (or a region in your AWS profile).")
try:
    account = session.client("sts", region_name=region).get_caller_identity()["Account"]
except (BotoCoreError, ClientError) as error:
    sys.exit(f"AWS credentials are missing or not valid ({error}).")
print(account, region)
PY
)"; then
        if command -v aws >/dev/null 2>&1 && aws sts get-caller-identity >/dev/null 2>&1; then
            answer="$(aws sts get-caller-identity --query Account --output text) \
${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region)}}"
        else
            die "$answer
Configure credentials first: \`aws configure\`, \`aws sso login --profile <p>\` with AWS_PROFILE=<p>,
or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_REGION)."
        fi
    fi
    read -r AWS_ACCOUNT AWS_REGION <<<"$answer"
    [[ -n "${AWS_REGION:-}" ]] || die "no AWS region: set AWS_REGION."
    export AWS_REGION
}

# `sam build` for a python runtime needs that exact Python on PATH, or Docker with --use-container.
check_build_python() {
    local runtime version
    runtime="$("$(project_python)" -c '
from backend.template import FUNCTION_ID, Template
t = Template.load()
print(t.properties(FUNCTION_ID).get("Runtime") or t.raw["Globals"]["Function"]["Runtime"])')"
    version="${runtime#python}"
    if [[ "${STREAMDESK_SAM_BUILD_ARGS:-}" == *--use-container* ]]; then
        return 0
    fi
    if ! command -v "python$version" >/dev/null 2>&1; then
        die "the function runs on $runtime and \`sam build\` needs python$version on PATH to build it.
Install Python $version, or build in a container (needs Docker):
    STREAMDESK_SAM_BUILD_ARGS=--use-container make deploy"
    fi
}

# Prints the stack's outputs and what to do next.
print_next_steps() {
    "$(project_python)" - "$STACK" "$AWS_REGION" <<'PY'
import sys

import boto3

from backend.deployed.stack import StackError, stack_outputs

stack, region = sys.argv[1], sys.argv[2]
try:
    outputs = stack_outputs(stack, boto3.client("cloudformation", region_name=region))
except StackError as error:
    sys.exit(f"error: {error}")
print(f"""
Deployed stack {stack} in {region}.
  API:   {outputs.api_url}/requests
  table: {outputs.table_name}

Read the API key value with:
  aws apigateway get-api-key --api-key {outputs.api_key_id} --include-value --query value --output text --region {region}

Watch it with the dashboard (table, API URL and key come from the stack's outputs):
  STREAMDESK_STACK={stack} STREAMDESK_REGION={region} make dashboard

Tear it down with:
  STREAMDESK_STACK={stack} AWS_REGION={region} make destroy""")
PY
}

main() {
    cd "$ROOT"
    local sam
    sam="$(find_sam)"
    check_credentials
    check_build_python
    echo "Deploying stack $STACK to account $AWS_ACCOUNT in $AWS_REGION with $sam"
    # shellcheck disable=SC2086  # the extra arguments are meant to split into words
    "$sam" build --template-file "$TEMPLATE" ${STREAMDESK_SAM_BUILD_ARGS:-}
    # sam deploy picks up .aws-sam/build/template.yaml, the built template, from this directory.
    # shellcheck disable=SC2086
    "$sam" deploy \
        --stack-name "$STACK" \
        --region "$AWS_REGION" \
        --capabilities CAPABILITY_IAM \
        --resolve-s3 \
        --no-fail-on-empty-changeset \
        ${STREAMDESK_SAM_DEPLOY_ARGS:-}
    print_next_steps
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
