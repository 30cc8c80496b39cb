//! Random well-typed programs (see `kiln::fuzzing::random_program`): they must compile, and
//! the lowered and optimised IR must agree on every kernel.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln::fuzzing::typed_pipeline(data));
