//! The cache's own SHA-256 (`tollgate_cache::sha256`) gives the digests of the `sha2` crate and
//! FIPS 180-4's examples: a different digest would be a different key for every request.

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use tollgate_cache::sha256::digest;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_fips_examples_have_their_published_digests() {
    let cases: [(&[u8], &str); 3] = [
        (
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(hex(&digest(message)), expected, "{message:?}");
    }
    assert_eq!(
        hex(&digest(&vec![b'a'; 1_000_000])),
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    );
}

#[test]
fn every_length_across_the_block_and_padding_boundaries_matches_sha2() {
    // 55/56 bytes: the last length whose padding fits one block, the first that needs two.
    let message: Vec<u8> = (0..=700u32)
        .map(|i| (i.wrapping_mul(151) % 251) as u8)
        .collect();
    for len in 0..=message.len() {
        let part = &message[..len];
        assert_eq!(
            digest(part),
            <[u8; 32]>::from(Sha256::digest(part)),
            "length {len}"
        );
    }
}

proptest! {
    #[test]
    fn any_bytes_hash_as_sha2_hashes_them(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        prop_assert_eq!(digest(&bytes), <[u8; 32]>::from(Sha256::digest(&bytes)));
    }
}
