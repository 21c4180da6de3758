"""The data layer: every DynamoDB read and write on the requests table, and the one error model they share.

``models`` (what callers get), ``items`` (typed items -> models), ``expressions`` and ``index_query``
(how lists read the sharded indexes), ``page_token`` (where the next page resumes), ``calls`` (one
DynamoDB call, outages turned into :class:`~backend.store.calls.StoreUnavailable`), ``reader``
(:class:`~backend.store.reader.RequestStore`) and ``actions`` (the conditional writes people make).
"""
