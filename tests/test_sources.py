"""docextract.preprocess.sources: references (paths, bytes, data URIs, base64) to bytes, sizes checked first."""

from __future__ import annotations

import base64

import pytest

from docextract.errors import InputError
from docextract.preprocess.sources import check_size, decode_base64, decode_data_uri, read_source_bytes


def test_base64_line_breaks_are_accepted_and_garbage_is_named():
    data = bytes(range(256)) * 4
    assert decode_base64(base64.encodebytes(data).decode()) == data
    with pytest.raises(InputError) as err:
        decode_base64("@@@", name="doc", invalid="not base64 at all")
    assert err.value.kind == "invalid_data_uri" and err.value.message == "doc: not base64 at all"


def test_sizes_are_checked_before_decoding_or_reading(tmp_path):
    with pytest.raises(InputError) as err:
        decode_base64("A" * 4000, max_bytes=1000, name="doc")  # valid base64 of 3000 zero bytes
    assert err.value.kind == "too_large" and err.value.message.startswith("doc: ")
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 2000)
    with pytest.raises(InputError) as err:
        read_source_bytes(path, max_bytes=1000)
    assert err.value.kind == "too_large"
    check_size(1000, 1000, "doc")  # the limit itself is accepted
    check_size(10**12, None, "doc")


def test_references_of_every_kind_give_the_same_bytes(tmp_path):
    data = b"\x89PNG not really"
    path = tmp_path / "a.png"
    path.write_bytes(data)
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    assert read_source_bytes(path) == (str(path), data)
    assert read_source_bytes(data) == ("input", data)
    assert read_source_bytes(uri) == ("data URI", data)
    assert decode_data_uri(uri) == data
    with pytest.raises(InputError) as err:
        read_source_bytes(b"")
    assert err.value.kind == "empty_file"
