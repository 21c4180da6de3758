"""Reading and rebuilding the rollups that the ``streamdesk_rollups`` consumer maintains from the stream."""
