"""A response's bytes with its composed resources spliced in as they were encoded.

The plan's composed resources come as serialised Structs (``codec.struct_bytes``,
most of them from a memo). Parsing each into the response and serialising the
whole response again costs a large claim about a quarter of its planning time;
here the response is serialised without them and their map entries are written
around the Struct bytes as they are. The result is byte for byte what
``SerializeToString(deterministic=True)`` gives for the response with the
resources parsed in (fields in number order, map entries sorted by key as
upb sorts them, see ``_prefix_order``), which a unit test checks on every
example.

Wire format used (protobuf encoding): a length-delimited field is its tag
``number << 3 | 2`` as a varint, the payload's length as a varint, the payload;
an enum field is its tag ``number << 3`` and the value as a varint. A map entry
is a length-delimited message of the key (field 1) and the value (field 2).
"""

from __future__ import annotations

from collections.abc import Iterable

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.codec import BytesLRU

# Field numbers (run_function.proto, v1).
RESPONSE_META = 1
RESPONSE_DESIRED = 2
STATE_COMPOSITE = 1
STATE_RESOURCES = 2
RESOURCE_STRUCT = 1
RESOURCE_READY = 3


def _prefix_order() -> bytes:
    """What to append to a key so that ``sorted`` orders map entries as protobuf does.

    Deterministic serialisation sorts string keys bytewise; upb (protobuf 4 and
    later) puts a key after the keys it is a prefix of (``ab`` before ``a``).
    Asked of protobuf itself once, so another rule would not go unnoticed.
    """
    state = fnv1.State()
    for key in ("a", "ab"):
        state.resources[key].ready = fnv1.READY_TRUE
    data = state.SerializeToString(deterministic=True)
    return b"\xff" if data.index(b"ab") < data.index(b"\n\x01a") else b""


_SORT_SUFFIX = _prefix_order()


def _sort_key(key: str) -> bytes:
    return key.encode() + _SORT_SUFFIX


_ONE_BYTE = [bytes((n,)) for n in range(0x80)]
# Tags: (field number << 3) | wire type (2: length-delimited, 0: varint).
_TAG_KEY = bytes((1 << 3 | 2,))  # a map entry's key
_TAG_VALUE = bytes((2 << 3 | 2,))  # a map entry's value
_TAG_STATE_RESOURCES = bytes((STATE_RESOURCES << 3 | 2,))
_TAG_RESOURCE_STRUCT = bytes((RESOURCE_STRUCT << 3 | 2,))
_TAG_READY = bytes((RESOURCE_READY << 3,))


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _ONE_BYTE[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def resource_entry(key: str, struct: bytes, ready: int) -> bytes:
    """The ``State.resources`` map entry of ``key``: a Resource of ``struct`` and ``ready``.

    Written in one join: the Struct bytes, most of the entry, are copied once.
    """
    name = key.encode()
    struct_len = _varint(len(struct))
    ready_field = _TAG_READY + _varint(ready) if ready else b""
    value_len = 1 + len(struct_len) + len(struct) + len(ready_field)
    name_len = _varint(len(name))
    value_len_bytes = _varint(value_len)
    entry_len = 1 + len(name_len) + len(name) + 1 + len(value_len_bytes) + value_len
    return b"".join(
        (
            _TAG_STATE_RESOURCES,
            _varint(entry_len),
            _TAG_KEY,
            name_len,
            name,
            _TAG_VALUE,
            value_len_bytes,
            _TAG_RESOURCE_STRUCT,
            struct_len,
            struct,
            ready_field,
        )
    )


# Map entries of memoised bodies (``Composed.encoded``), by key, body and ready: those
# bodies come from the stack's and the gateway's memos as the same bytes objects call
# after call, whose hash Python keeps, so finding one costs a dictionary probe.
ENTRY_CACHE_ENTRIES = 8192
ENTRY_CACHE_BYTES = 16 << 20
_ENTRIES = BytesLRU(ENTRY_CACHE_ENTRIES, ENTRY_CACHE_BYTES)


def memo_entry(key: str, struct: bytes, ready: int) -> bytes:
    """``resource_entry`` for a memoised body, written once while it is kept."""
    found = _ENTRIES.get((key, struct, ready))
    if found is None:
        found = resource_entry(key, struct, ready)
        _ENTRIES.put((key, struct, ready), found)
    return found


def _message_entry(key: str, resource: fnv1.Resource) -> bytes:
    payload = resource.SerializeToString(deterministic=True)
    return _delimited(STATE_RESOURCES, _delimited(1, key.encode()) + _delimited(2, payload))


def response_bytes(rsp: fnv1.RunFunctionResponse, entries: Iterable[tuple[str, bytes]]) -> bytes:
    """``rsp`` serialised deterministically with ``entries`` among its desired resources.

    ``entries`` are ``resource_entry`` results by key; a key ``rsp`` holds
    already is the caller's to update in ``rsp``. ``rsp`` loses its desired
    state (it is written here): the caller serialises nothing else from it.
    """
    ours = {key: entry for key, entry in entries if key not in rsp.desired.resources}
    theirs = {key: _message_entry(key, res) for key, res in rsp.desired.resources.items()}
    state = fnv1.State()
    if rsp.desired.HasField("composite"):
        state.composite.CopyFrom(rsp.desired.composite)
    head = state.SerializeToString(deterministic=True)
    if rsp.desired.ByteSize() != len(head) + sum(map(len, theirs.values())):
        # Something else in the desired state (fields this version does not
        # know): serialise it as protobuf would, with the entries parsed in.
        rsp.desired.MergeFromString(b"".join(ours.values()))
        return bytes(rsp.SerializeToString(deterministic=True))
    merged = {**theirs, **ours}
    desired_present = rsp.HasField("desired") or bool(merged)
    rsp.ClearField("desired")
    rest = rsp.SerializeToString(deterministic=True)
    meta = len(_delimited(RESPONSE_META, rsp.meta.SerializeToString(deterministic=True)))
    if not rsp.HasField("meta"):
        meta = 0
    if not desired_present:
        return bytes(rest)
    body = b"".join([head, *(merged[key] for key in sorted(merged, key=_sort_key))])
    tag = _varint(RESPONSE_DESIRED << 3 | 2)
    return b"".join((rest[:meta], tag, _varint(len(body)), body, rest[meta:]))
