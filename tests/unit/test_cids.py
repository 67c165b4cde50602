import base64
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.pins.cids import ContentId, InvalidCid, parse_cid

# One file's CID in several spellings (`ipfs cid format` agrees).
CID_V0 = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"
CID_V1 = "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
CID_V1_BASE32_UPPER = "BAFYBEIHDWDCEFGH4DQKJV67UZCMW7OJEE6XEDZDETOJUZJEVTENXQUVYKU"
CID_V1_BASE36 = "k2jmtxx1epa2wl096hsbpuhrz9xhppklonehzwkmskc9rmeb51kwn4ut"
CID_V1_BASE58 = "zdj7Wkkhxcu2rsiN6GUyHCLsSLL47kdUNfjbFqBUUhMFTZKBi"

RAW = 0x55


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _cid_v1(hash_code: int, digest: bytes, codec: int = RAW) -> str:
    """A base32 CIDv1 built byte by byte, so no library can tidy it up."""
    binary = _varint(1) + _varint(codec) + _varint(hash_code) + _varint(len(digest)) + digest
    return "b" + base64.b32encode(binary).decode().lower().rstrip("=")


def test_given_cidv0_and_its_v1_form_when_parsed_then_same_key() -> None:
    v0 = parse_cid(CID_V0)
    v1 = parse_cid(CID_V1)

    assert v0.key == v1.key == CID_V1
    assert v0.text == CID_V0


@pytest.mark.parametrize("spelling", [CID_V1_BASE32_UPPER, CID_V1_BASE36, CID_V1_BASE58])
def test_given_another_multibase_when_parsed_then_same_key_and_original_text_kept(spelling: str) -> None:
    assert parse_cid(spelling) == ContentId(text=spelling, key=CID_V1)


def test_given_a_raw_cid_when_parsed_then_key_keeps_its_codec() -> None:
    text = _cid_v1(0x12, hashlib.sha256(b"hello").digest())

    assert parse_cid(text).key == text
    assert parse_cid(text).key != parse_cid(_cid_v1(0x12, hashlib.sha256(b"hello").digest(), codec=0x71)).key


def test_given_a_truncated_sha2_256_digest_when_parsed_then_rejected() -> None:
    truncated = _cid_v1(0x12, hashlib.sha256(b"hello").digest()[:20])

    with pytest.raises(InvalidCid, match="sha2-256 digest must be 32 bytes, not 20"):
        parse_cid(truncated)


def test_given_a_digest_shorter_than_its_declared_length_when_parsed_then_rejected() -> None:
    whole = _cid_v1(0x12, hashlib.sha256(b"hello").digest())
    # Dropping the last 8 base32 characters removes 5 digest bytes.
    with pytest.raises(InvalidCid, match="not a valid CID"):
        parse_cid(whole[:-8])


def test_given_md5_when_parsed_then_rejected_as_insecure() -> None:
    with pytest.raises(InvalidCid, match="md5 is not allowed"):
        parse_cid(_cid_v1(0xD5, hashlib.md5(b"hello").digest()))


def test_given_sha2_384_which_verifcid_omits_when_parsed_then_rejected() -> None:
    with pytest.raises(InvalidCid, match="sha2-384 is not allowed"):
        parse_cid(_cid_v1(0x20, hashlib.sha384(b"hello").digest()))


def test_given_blake2b_128_when_parsed_then_rejected() -> None:
    with pytest.raises(InvalidCid, match="blake2b-128 is not allowed"):
        parse_cid(_cid_v1(0xB210, hashlib.blake2b(b"hello", digest_size=16).digest()))


@pytest.mark.parametrize(
    ("hash_code", "digest"),
    [
        (0xB220, hashlib.blake2b(b"hello", digest_size=32).digest()),  # blake2b-256
        (0xB214, hashlib.blake2b(b"hello", digest_size=20).digest()),  # blake2b-160
        (0xB240, hashlib.blake2b(b"hello", digest_size=64).digest()),  # blake2b-512
        (0xB260, hashlib.blake2s(b"hello", digest_size=32).digest()),  # blake2s-256
        (0xB254, hashlib.blake2s(b"hello", digest_size=20).digest()),  # blake2s-160
        (0x11, hashlib.sha1(b"hello").digest()),
        (0x13, hashlib.sha512(b"hello").digest()),
        (0x16, hashlib.sha3_256(b"hello").digest()),
        (0x17, hashlib.sha3_224(b"hello").digest()),
        (0x19, hashlib.shake_256(b"hello").digest(64)),
        (0x1E, bytes(128)),  # blake3 at the 128-byte ceiling
        (0x1E, bytes(20)),  # blake3 at the 20-byte floor
        (0x56, hashlib.sha256(hashlib.sha256(b"hello").digest()).digest()),
    ],
)
def test_given_an_allowed_hash_function_when_parsed_then_accepted(hash_code: int, digest: bytes) -> None:
    text = _cid_v1(hash_code, digest)

    assert parse_cid(text).key == text


@pytest.mark.parametrize(
    ("hash_code", "digest"),
    [
        (0xB250, hashlib.blake2s(b"hello", digest_size=16).digest()),  # blake2s-128
        (0xB213, hashlib.blake2b(b"hello", digest_size=19).digest()),  # blake2b-152
        (0xB220, hashlib.blake2b(b"hello", digest_size=20).digest()),  # blake2b-256 cut short
        (0x19, hashlib.shake_256(b"hello").digest(16)),
        (0x1E, bytes(129)),
        (0x1E, bytes(19)),
        (0x16, hashlib.sha3_256(b"hello").digest()[:28]),
        (0x22, bytes(8)),  # murmur3-x64-64
    ],
)
def test_given_a_disallowed_hash_or_digest_size_when_parsed_then_rejected(hash_code: int, digest: bytes) -> None:
    with pytest.raises(InvalidCid):
        parse_cid(_cid_v1(hash_code, digest))


def test_given_every_blake2_in_the_multicodec_table_when_parsed_then_only_160_bits_and_up_accepted() -> None:
    from multiformats import multicodec

    names = {c.code: re.fullmatch(r"blake2[bs]-(\d+)", c.name) for c in multicodec.table(tag="multihash")}
    blake2 = [(code, int(name.group(1))) for code, name in names.items() if name]
    assert len(blake2) == 64 + 32

    for code, bits in blake2:
        text = _cid_v1(code, bytes(bits // 8))
        if bits >= 160:
            assert parse_cid(text).key == text
        else:
            with pytest.raises(InvalidCid):
                parse_cid(text)


def test_given_an_identity_cid_when_parsed_then_accepted() -> None:
    text = _cid_v1(0x00, b"hello world")

    assert parse_cid(text).key == text


def test_given_an_identity_cid_over_128_bytes_when_parsed_then_rejected() -> None:
    parse_cid(_cid_v1(0x00, bytes(128)))

    with pytest.raises(InvalidCid, match="identity digest must be 0 to 128 bytes, not 129"):
        parse_cid(_cid_v1(0x00, bytes(129)))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "Qm",
        "bafy",
        "z",
        "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1",  # one character short
        "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n1",
        "Qmdf0bBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n",  # 0 is not base58
        "zQmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n",  # CIDv0 with a multibase prefix
        f" {CID_V1}",
        f"{CID_V1}\n",
        f"/ipfs/{CID_V1}",
        "f02701220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # CIDv2
        "f0155",
        "bafkqaaa" + "a" * 600,
    ],
)
def test_given_garbage_when_parsed_then_rejected(text: str) -> None:
    with pytest.raises(InvalidCid):
        parse_cid(text)


@pytest.mark.parametrize("value", [None, 42, b"QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n", ["Qm"]])
def test_given_a_non_string_when_parsed_then_rejected(value: object) -> None:
    with pytest.raises(InvalidCid, match="non-empty string"):
        parse_cid(value)  # type: ignore[arg-type]


def test_given_a_cid_over_512_characters_when_parsed_then_rejected_before_decoding() -> None:
    with pytest.raises(InvalidCid, match="longer than 512"):
        parse_cid("b" + "a" * 512)


def test_given_invalid_cids_when_caught_as_value_error_then_callers_need_not_know_the_type() -> None:
    with pytest.raises(ValueError):
        parse_cid("hello")


def test_given_a_cold_process_when_the_module_is_imported_then_multiformats_is_not_loaded() -> None:
    # The Lambda cold start should not pay for multiformats until a CID is parsed.
    probe = "import sys, chalicelib.pins.cids; print('multiformats' in sys.modules)"
    root = Path(__file__).resolve().parents[2]

    result = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"
