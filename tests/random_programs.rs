//! Structure-aware differential testing in every `cargo test`: random well-typed programs
//! must compile, and the IR as lowered, the optimised IR and the Cranelift JIT must agree on
//! every kernel.

#[test]
fn random_typed_programs_compile_and_agree() {
    // `KILN_RANDOM_CASES=100000 cargo test --release --test random_programs` explores longer.
    let cases: u64 = std::env::var("KILN_RANDOM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut state = 0x5eed_u64;
    for case in 0..cases {
        let len = 64 + (case % 7) * 96;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                // splitmix64: a fixed, portable stream, so failures reproduce.
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)) as u8
            })
            .collect();
        kiln::fuzzing::typed_pipeline(&data);
    }
}
