//! Replays the fuzz target's body over every corpus case and every saved fuzz input
//! (`fuzz/regressions/`), so the optimiser's differential check runs in every `cargo test`.

use std::path::Path;

#[test]
fn fuzz_pipeline_on_the_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["tests/corpus", "kernels", "fuzz/regressions"] {
        let dir = root.join(dir);
        if !dir.exists() {
            continue;
        }
        for case in kiln::corpus::cases(&dir).expect("readable") {
            let bytes = std::fs::read(&case).expect("readable case");
            kiln::fuzzing::pipeline(&bytes);
            n += 1;
        }
    }
    assert!(n > 200, "only {n} inputs replayed");
}
