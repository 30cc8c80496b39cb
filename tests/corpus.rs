//! The corpus: every `.kl` case under `tests/corpus` and `kernels/`, on every executor.
//! `KILN_BLESS=1 cargo test --test corpus` rewrites snapshots.
#![allow(clippy::print_stdout)]

use std::path::Path;

fn main() {
    let opts = kiln::corpus::Options::default();
    let names: Vec<String> = opts
        .executors
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    println!("corpus executors: {}", names.join(", "));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failed = 0;
    let mut passed = 0;
    for dir in ["tests/corpus", "kernels"] {
        let report = kiln::corpus::run_dir(&root.join(dir), &opts, |_, _| {})
            .expect("the corpus directory is readable");
        for (path, why) in &report.failed {
            println!("FAILED {}\n{why}\n", path.display());
        }
        for p in &report.blessed {
            println!("blessed {}", p.display());
        }
        passed += report.passed;
        failed += report.failed.len();
    }
    println!("corpus: {passed} passed, {failed} failed");
    if passed + failed < 1 {
        println!("no corpus cases found");
        std::process::exit(1);
    }
    if failed > 0 {
        std::process::exit(1);
    }
}
