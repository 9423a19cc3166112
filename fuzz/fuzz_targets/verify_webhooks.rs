//! Fuzzes the webhook signature verifiers (`narakim::trigger::verify`)
//! against their contract. The property lives in the library, in
//! `src/trigger/verify/fuzzing.rs`, so the unit tests run it on
//! pseudo-random inputs too; this target only feeds it the fuzzer's bytes.
//!
//! The bytes decode into a scheme (standard-webhooks v1 and v1a, github,
//! stripe, slack, discord-interactions, or an hmac recipe), a key, a
//! timestamp, an id, arbitrary headers and a body. `check` asserts that
//! verifying never panics, that a request made with the scheme's `sign`
//! helper verifies, and that flipping any byte of its signature,
//! truncating or extending the signature, flipping or appending a body
//! byte, moving the signed timestamp or changing the key makes it fail.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| narakim::trigger::verify::fuzzing::check(data));
