#!/usr/bin/env bash
# Delete a deployed Streamdesk stack (`make destroy`). The requests table is kept: see the end.
#
#   STREAMDESK_STACK   stack name [streamdesk]
#   -y / --yes         do not ask for confirmation (required when not run from a terminal)
set -euo pipefail

# find_sam, check_credentials, project_python, die, ROOT, STACK.
# shellcheck source=scripts/deploy.sh
source "$(dirname "${BASH_SOURCE[0]}")/deploy.sh"

# The table's name, read before the stack (and its outputs) are gone; empty if unreadable.
retained_table() {
    "$(project_python)" - "$STACK" "$AWS_REGION" <<'PY' 2>/dev/null || true
import sys

import boto3

from backend.deployed.stack import StackError, stack_outputs

try:
    print(stack_outputs(sys.argv[1], boto3.client("cloudformation", region_name=sys.argv[2])).table_name)
except StackError:
    pass
PY
}

destroy_main() {
    cd "$ROOT"
    local assume_yes=false sam table answer
    case "${1:-}" in
    -y | --yes) assume_yes=true ;;
    "") ;;
    *) die "usage: $0 [-y|--yes]" ;;
    esac
    sam="$(find_sam)"
    check_credentials
    table="$(retained_table)"

    if [[ "$assume_yes" != true ]]; then
        [[ -t 0 ]] || die "not a terminal: run \`$0 --yes\` to delete stack $STACK without asking."
        read -r -p "Delete stack $STACK in account $AWS_ACCOUNT, $AWS_REGION? [y/N] " answer
        [[ "$answer" == [yY]* ]] || die "nothing deleted."
    fi

    "$sam" delete --stack-name "$STACK" --region "$AWS_REGION" --no-prompts

    cat <<EOF

Stack $STACK is deleted: the API, its key, the function, its trigger, the failure queue, the alarms and
the log groups are gone.

The requests table${table:+ $table} is NOT deleted:
the template marks it DeletionPolicy: Retain, so that deleting or replacing the stack never takes the
requests with it. It keeps costing its storage (and point-in-time recovery) until you delete it:
  aws dynamodb delete-table --table-name ${table:-<the TableName output>} --region $AWS_REGION
A new deployment under the same stack name creates a new table; it does not reuse this one.
EOF
}

destroy_main "$@"
