"""Readers of a deployed AWS stack: its CloudFormation outputs, the event source mapping, metrics, queues."""
