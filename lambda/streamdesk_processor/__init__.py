"""Streamdesk's stream processor: the Lambda function behind the requests table's stream."""
