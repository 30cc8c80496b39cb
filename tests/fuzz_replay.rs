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

/// Inputs of the `typed` target that once failed (`fuzz/regressions/typed/*.bin`: the bytes
/// a random program is generated from), replayed through the same body: interpreter, optimiser
/// and native code must agree.
#[test]
fn typed_fuzz_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/typed");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the regressions directory") {
        let path = entry.expect("readable directory").path();
        if path.extension().is_some_and(|e| e == "bin") {
            kiln::fuzzing::typed_pipeline(&std::fs::read(&path).expect("readable input"));
            n += 1;
        }
    }
    assert!(n >= 1, "no regression inputs in {}", dir.display());
}

/// The fuzz body runs scripts from arbitrary bytes: `save` and `load` must not touch files.
#[test]
fn fuzzed_scripts_cannot_write_files() {
    let path = std::env::temp_dir().join(format!("kiln-fuzz-{}.npy", std::process::id()));
    let script = format!("save(\"{}\", zeros(3));", path.display());
    kiln::fuzzing::pipeline(script.as_bytes());
    assert!(!path.exists(), "the fuzz body wrote {}", path.display());
}
