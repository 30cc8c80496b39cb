//! Lex → parse → check → lower → verify → optimise → interpret, with the optimised and
//! lowered IR compared on every kernel. See `kiln::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln::fuzzing::pipeline(data));
