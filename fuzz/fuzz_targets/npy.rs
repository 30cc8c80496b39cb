//! `.npy` reading and the array scripts that use what it reads: the input bytes are written to
//! a file, which scripts load as each Kiln dtype, then map, reduce (whole and along axis 0)
//! and print, through the public API. Any outcome but a panic, an abort or an allocation
//! beyond what the file justifies is fine: a bad file must be an error. Run under a memory
//! limit: `cargo fuzz run -s none npy fuzz/seeds/npy -- -rss_limit_mb=2048 -dict=npy.dict`.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

struct Target {
    path: PathBuf,
    /// One compiled script per dtype.
    scripts: Vec<kiln::Compiled>,
}

const DTYPES: [&str; 7] = ["f64", "f32", "i32", "i64", "u32", "u64", "bool"];

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("kiln-fuzz-npy-{}.npy", std::process::id()));
        let p = path.to_str().expect("a UTF-8 temporary path");
        let scripts = DTYPES
            .iter()
            .map(|t| {
                let src = kiln::fuzzing::npy_script(t, p);
                kiln::compile("npy.kl", &src).expect("the fuzz scripts compile")
            })
            .collect();
        Target { path, scripts }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let t = target();
    if std::fs::write(&t.path, data).is_err() {
        return;
    }
    let exec = kiln::Interpreter::new(10_000_000);
    for c in &t.scripts {
        let mut out = std::io::sink();
        // Errors are expected; panics and aborts are the bugs.
        let _ = kiln::script::Evaluator::new(c, &exec)
            .with_max_elements(1 << 24)
            .run(&mut out);
    }
});
