"""The local twin of the AWS stack: DynamoDB Local, the API twin, the trigger twin and their supervisor."""
