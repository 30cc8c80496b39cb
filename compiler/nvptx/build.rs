//! Fingerprints the code generator's own source, so that PTX cached on disk by an earlier
//! build of Kiln (`kiln-runtime`'s disk cache) is never mistaken for this build's: the
//! fingerprint is part of every cache key ([`kiln_nvptx::CODEGEN_FINGERPRINT`]).

use std::path::Path;

fn main() {
    let mut files: Vec<_> = std::fs::read_dir("src")
        .expect("src/ is readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    // FNV-1a over the file names and contents.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(Path::new(f)).expect("source is readable");
        for &b in name.as_bytes().iter().chain(&bytes) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rustc-env=KILN_NVPTX_FINGERPRINT={h:016x}");
}
