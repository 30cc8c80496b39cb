//! `load` and `save` against hostile `.npy` files and failing disks: every fault is an error
//! at the call, saying what is wrong with the file, with no abort, panic or huge allocation;
//! `save` replaces a file atomically or not at all. A test that needs a shell feature this
//! machine lacks (`ulimit -v`, `mkfifo`) says it is skipped.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A `.npy` file: the preamble of `version` (1, 2 or 3), `header` padded as NumPy pads it,
/// then `data`.
fn npy(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut h = header.as_bytes().to_vec();
    let pad = (64 - (prefix + h.len() + 1) % 64) % 64;
    h.extend(std::iter::repeat_n(b' ', pad));
    h.push(b'\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((h.len() as u16).to_le_bytes());
    } else {
        out.extend((h.len() as u32).to_le_bytes());
    }
    out.extend(h);
    out.extend(data);
    out
}

/// A header dictionary as NumPy writes it.
fn dict(descr: &str, shape: &str) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().expect("a temporary directory"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// Writes `bytes` to `name`; its path as a script's string literal would hold it.
    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("writes the test file");
        p.to_str().expect("a UTF-8 temporary path").to_string()
    }

    /// The names in the directory.
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.0.path())
            .expect("readable")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// Runs `src` as a script on the interpreter, with at most `max` elements per array: its
/// output, or the rendered error.
fn run_with(src: &str, max: usize) -> Result<String, String> {
    let c = kiln::compile("npy.kl", src).map_err(|e| e.to_string())?;
    let exec = kiln::Interpreter::new(1_000_000);
    let mut out = Vec::new();
    kiln::script::Evaluator::new(&c, &exec)
        .with_max_elements(max)
        .run(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).expect("utf-8"))
}

fn run(src: &str) -> Result<String, String> {
    run_with(src, kiln::script::DEFAULT_MAX_ELEMENTS)
}

/// The error of loading `bytes` with `let z = load(..)`; it must point at the call.
fn load_error(bytes: &[u8]) -> String {
    let d = Dir::new();
    let p = d.file("f.npy", bytes);
    let err =
        run(&format!("let z = load(\"{p}\");\nprint(z);")).expect_err("loading this file fails");
    assert!(
        err.contains("npy.kl:1:9"),
        "the error points at `load`: {err}"
    );
    assert!(err.contains("loaded here"), "{err}");
    assert!(
        err.len() < 1500,
        "a short message: {} bytes: {err}",
        err.len()
    );
    err
}

/// Runs the `kiln` binary on a script in `dir` through `sh -c`, with `prefix` before it
/// (`ulimit`s and the like).
fn kiln_sh(dir: &Path, prefix: &str, script: &str) -> Output {
    let s = dir.join("script.kl");
    std::fs::write(&s, script).expect("writes the script");
    let cmd = format!("{prefix} exec \"$KILN\" run script.kl");
    Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .current_dir(dir)
        .env("KILN", env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_NUM_THREADS", "2")
        .output()
        .expect("sh runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn files_numpy_writes_load() {
    let d = Dir::new();
    let be: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let be = d.file("be.npy", &npy(1, &dict(">f8", "(2,)"), &be));
    let i4: Vec<u8> = [1i32, 2, 3, 4, 5, 6]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let fortran = d.file(
        "fo.npy",
        &npy(
            1,
            "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }",
            &i4,
        ),
    );
    let b = d.file("b.npy", &npy(1, &dict("|b1", "(3,)"), &[1, 0, 1]));
    let scalar = d.file("s.npy", &npy(1, &dict("<f8", "()"), &f64_bytes(&[3.5])));
    let empty = d.file("e.npy", &npy(1, &dict("<f8", "(0, 3)"), &[]));
    let v3 = d.file("v3.npy", &npy(3, &dict("<f8", "(1,)"), &f64_bytes(&[7.0])));
    let out = run(&format!(
        "let a = load(\"{be}\");\nlet f: i32 = load(\"{fortran}\");\n\
         let b: bool = load(\"{b}\");\nprint(a, f, b, load(\"{scalar}\"), load(\"{empty}\"), load(\"{v3}\"));"
    ))
    .expect("loads");
    assert_eq!(
        out,
        "[1.5, -2.0] [[1, 3, 5], [2, 4, 6]] [true, false, true] 3.5 [] [7.0]\n"
    );
}

/// Issue 12 item 1: a 128-byte file claiming `(10000000000,)` used to abort the process with
/// an 80 GB allocation (status 134). Run the binary, under a memory limit as well.
#[test]
fn a_huge_shape_in_a_small_file_is_an_error_not_an_abort() {
    let d = Dir::new();
    let bytes = npy(1, &dict("<f8", "(10000000000,)"), &[]);
    assert_eq!(bytes.len(), 128);
    d.file("big.npy", &bytes);
    let script = "let z = load(\"big.npy\");\nprint(z);\n";
    let mut prefixes = vec![""];
    if Command::new("sh")
        .args(["-c", "ulimit -v 1048576"])
        .status()
        .is_ok_and(|s| s.success())
    {
        prefixes.push("ulimit -v 1048576;");
    }
    for prefix in prefixes {
        let out = kiln_sh(d.0.path(), prefix, script);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{prefix}: {err}");
        assert!(
            err.contains("cannot load `big.npy`: it is truncated: its header promises 80000000000 bytes of data (shape (10000000000,), `<f8`), but only 0 bytes follow the header"),
            "{prefix}: {err}"
        );
        assert!(err.contains("script.kl:1:9"), "{err}");
        assert!(
            !err.contains("panicked") && !err.contains("annotate"),
            "{err}"
        );
    }
}

/// A file that really holds its data but more than the memory allowed: the allocation is
/// probed and fails cleanly (a sparse file, so the test needs no disk space).
#[test]
fn a_load_that_cannot_be_allocated_is_an_error() {
    let d = Dir::new();
    let n: u64 = 1 << 28; // 2 GiB of f64, within the 2^32-element limit
    let head = npy(1, &dict("<f8", &format!("({n},)")), &[]);
    let p = d.path("large.npy");
    std::fs::write(&p, &head).expect("writes");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .expect("opens");
    f.set_len(head.len() as u64 + 8 * n).expect("a sparse file");
    drop(f);
    let out = kiln_sh(
        d.0.path(),
        "ulimit -v 1048576 || exit 99;",
        "let z = load(\"large.npy\");\nprint(z);\n",
    );
    if out.status.code() == Some(99) {
        eprintln!("skipped: `ulimit -v` is not available");
        return;
    }
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot allocate the 2147483648 bytes of its data"),
        "{err}"
    );
}

/// Issue 12 item 2: zero-size arrays whose other dimensions overflow panicked inside
/// ndarray-npy (npy/mod.rs:610).
#[test]
fn zero_size_shapes_that_overflow_are_errors() {
    for shape in [
        "(0, 18446744073709551615)",
        "(0, 4294967296, 4294967296)",
        "(0, 9223372036854775807)",
        "(18446744073709551615, 2)",
    ] {
        let err = load_error(&npy(1, &dict("<f8", shape), &[]));
        assert!(
            err.contains(&format!("its shape {shape} is too large for any array")),
            "{shape}: {err}"
        );
    }
    // Within the limit, an empty array with a large dimension loads.
    let d = Dir::new();
    let p = d.file("z.npy", &npy(1, &dict("|b1", "(0, 1000000000000)"), &[]));
    let out = run(&format!("let z: bool = load(\"{p}\");\nprint(z);")).expect("loads");
    assert_eq!(out, "[]\n");
    // More dimensions than NumPy allows.
    let shape = format!("({})", vec!["1"; 65].join(", "));
    let err = load_error(&npy(1, &dict("<f8", &shape), &f64_bytes(&[1.0])));
    assert!(err.contains("its shape has 65 dimensions"), "{err}");
}

/// Issue 12 item 15: a header of a million `(` gave a 2.7 MB message.
#[test]
fn huge_or_malformed_headers_give_short_messages() {
    let err = load_error(&npy(2, &"(".repeat(1_000_000), &[]));
    assert!(
        err.contains("its header is 1000052 bytes long; Kiln reads headers of at most 65536 bytes"),
        "{err}"
    );
    // A header length beyond the file.
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend(4_000_000_000u32.to_le_bytes());
    bytes.extend(b"{}");
    let err = load_error(&bytes);
    assert!(err.contains("its header is 4000000000 bytes long"), "{err}");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend(1000u16.to_le_bytes());
    bytes.extend(b"{}\n");
    let err = load_error(&bytes);
    assert!(
        err.contains("it is truncated: its header should be 1000 bytes long, but only 3 bytes follow the preamble"),
        "{err}"
    );
    // Malformed within the limit: ndarray-npy's message, shortened.
    let err = load_error(&npy(2, &"(".repeat(60_000), &[]));
    assert!(err.contains("its header is malformed"), "{err}");
    assert!(err.contains("characters in all)"), "{err}");
    // A missing `shape` is named right (ndarray-npy 0.10 says "shaper").
    let err = load_error(&npy(1, "{'descr': '<f8', 'fortran_order': False, }", &[]));
    assert!(err.contains("its header has no `shape` entry"), "{err}");
    assert!(!err.contains("shaper"), "{err}");
    let err = load_error(&npy(1, "{'descr': '<f8', 'shape': (1,), 'x': 1}", &[]));
    assert!(
        err.contains("its header is malformed: unknown key"),
        "{err}"
    );
}

#[test]
fn truncated_and_padded_data_are_errors_with_both_sizes() {
    let err = load_error(&npy(1, &dict("<f8", "(5,)"), &f64_bytes(&[1.0; 4])));
    assert!(
        err.contains("it is truncated: its header promises 40 bytes of data (shape (5,), `<f8`), but only 32 bytes follow the header"),
        "{err}"
    );
    let err = load_error(&npy(1, &dict("<f8", "(2, 2)"), &f64_bytes(&[1.0; 5])));
    assert!(
        err.contains(
            "it has 8 bytes after the 32 bytes of data its header describes (shape (2, 2), `<f8`)"
        ),
        "{err}"
    );
    // Bytes that are no bool.
    let err = load_error(&npy(1, &dict("|b1", "(2,)"), &[1, 7]));
    assert!(err.contains("cannot load"), "{err}");
}

#[test]
fn files_that_are_not_npy_say_so() {
    let err = load_error(b"hello world, not numpy");
    assert!(
        err.contains("it is not a .npy file: it starts with `hello wo`, not with the magic string `\\x93NUMPY`"),
        "{err}"
    );
    let err = load_error(b"");
    assert!(err.contains("the file is empty, not a .npy file"), "{err}");
    let err = load_error(b"\x93NUM");
    assert!(err.contains("it ends inside the .npy preamble"), "{err}");
    let err = load_error(b"\x93NUMPY\x04\x00\x10\x00");
    assert!(
        err.contains("format version 4.0; Kiln reads versions 1.0, 2.0 and 3.0"),
        "{err}"
    );
    for err in [
        load_error(b"hello"),
        load_error(&npy(1, &dict("<f8", "(5,)"), &[])),
    ] {
        assert!(!err.contains("help") && !err.contains("annotate"), "{err}");
    }
    let d = Dir::new();
    let missing = d.path("missing.npy");
    let err = run(&format!("let z = load(\"{}\");", missing.display())).expect_err("missing");
    assert!(
        err.contains("missing.npy`: No such file or directory") && !err.contains("annotate"),
        "{err}"
    );
    let err = run(&format!("let z = load(\"{}\");", d.0.path().display())).expect_err("a dir");
    assert!(err.contains("it is a directory"), "{err}");
}

#[test]
fn unsupported_dtypes_are_named_without_annotation_advice() {
    for (descr, bytes) in [("|u1", 1), ("<f2", 2), ("<c16", 16), ("<U5", 20), ("|O", 8)] {
        let err = load_error(&npy(1, &dict(descr, "(1,)"), &vec![0; bytes]));
        assert!(
            err.contains(&format!("its elements are of dtype `{descr}`, which Kiln has no type for; Kiln loads bool (`|b1`), i32 (`<i4`)")),
            "{descr}: {err}"
        );
        assert!(!err.contains("annotate"), "{err}");
    }
    let err = load_error(&npy(
        1,
        "{'descr': [('a', '<f8'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }",
        &[0; 12],
    ));
    assert!(
        err.contains("a structured dtype, `[('a', '<f8'), ('b', '<i4')]`"),
        "{err}"
    );
}

/// Issue 12 item 13: the hint named `z` and `f32` whatever the variable and the file.
#[test]
fn the_dtype_hint_names_the_files_dtype_and_the_variable() {
    let d = Dir::new();
    let i4: Vec<u8> = [1i32, 2].iter().flat_map(|x| x.to_le_bytes()).collect();
    let p = d.file("p.npy", &npy(1, &dict("<i4", "(2,)"), &i4));
    let err = run(&format!("let counts = load(\"{p}\");")).expect_err("f64 from <i4");
    assert!(
        err.contains(&format!(
            "cannot load `{p}` as an array of f64: the file holds i32 elements (`<i4`)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "help: annotate the variable with the file's dtype: `let counts: i32 = load(\"{p}\");`"
        )),
        "{err}"
    );
    let i8: Vec<u8> = [1i64].iter().flat_map(|x| x.to_be_bytes()).collect();
    let q = d.file("q.npy", &npy(1, &dict(">i8", "(1,)"), &i8));
    let err = run(&format!("let x = 1;\nlet weights: f32 = load(\"{q}\");")).expect_err("f32");
    assert!(err.contains("npy.kl:2:20"), "{err}");
    assert!(
        err.contains(&format!("`let weights: i64 = load(\"{q}\");`")),
        "{err}"
    );
    // Not the value of a `let`: load it into a variable of its own.
    let err = run(&format!("let y = load(\"{p}\") * 2.0;")).expect_err("inside");
    assert!(
        err.contains(&format!("load the file into a variable of its own, annotated with the file's dtype, and convert that: `let a: i32 = load(\"{p}\");`, then `a as f64`")),
        "{err}"
    );
    assert!(!err.contains("let y: i32"), "{err}");
    let out = run(&format!("let c: i32 = load(\"{p}\");\nprint(c);")).expect("the right type");
    assert_eq!(out, "[1, 2]\n");
}

#[test]
fn loads_beyond_the_element_limit_are_errors() {
    let d = Dir::new();
    let p = d.file(
        "p.npy",
        &npy(1, &dict("<f8", "(20,)"), &f64_bytes(&[0.5; 20])),
    );
    let err = run_with(&format!("let z = load(\"{p}\");"), 10).expect_err("over the limit");
    assert!(
        err.contains("it holds 20 elements (shape (20,)), more than this script may allocate (10)"),
        "{err}"
    );
    assert_eq!(
        run_with(&format!("print(load(\"{p}\"));"), 20).expect("within"),
        format!("[{}]\n", vec!["0.5"; 20].join(", "))
    );
}

/// Issue 12 item 12: `save`'s I/O errors had no location.
#[test]
fn save_errors_point_at_the_call() {
    let d = Dir::new();
    std::fs::create_dir(d.path("adir")).expect("mkdir");
    let adir = d.path("adir");
    let err = run(&format!(
        "let x = 1;\nsave(\"{}\", zeros(3));",
        adir.display()
    ))
    .expect_err("onto a directory");
    assert!(
        err.contains(&format!(
            "cannot save to `{}`: Is a directory",
            adir.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("npy.kl:2:1") && err.contains("saved here"),
        "{err}"
    );
    let missing = d.path("nodir").join("x.npy");
    let err = run(&format!("save(\"{}\", zeros(3));", missing.display()))
        .expect_err("a missing directory");
    assert!(
        err.contains(&format!(
            "cannot save to `{}`: No such file or directory (the directory `{}`)",
            missing.display(),
            d.path("nodir").display()
        )),
        "{err}"
    );
    assert!(err.contains("npy.kl:1:1"), "{err}");
    assert_eq!(d.names(), ["adir"]);
}

/// Issue 12 item 8: on a full disk `save` destroyed the old file and left a truncated one.
/// Writes past 8 KiB fail with EFBIG here (SIGXFSZ ignored), as on a full disk.
#[test]
fn save_on_a_full_disk_keeps_the_old_file() {
    let d = Dir::new();
    let old = npy(1, &dict("<f8", "(3,)"), &f64_bytes(&[1.0, 2.0, 3.0]));
    d.file("keep.npy", &old);
    let out = kiln_sh(
        d.0.path(),
        "trap '' XFSZ; ulimit -f 8 || exit 99;",
        "save(\"keep.npy\", linspace(0.0, 1.0, 200000));\n",
    );
    if out.status.code() == Some(99) {
        eprintln!("skipped: `ulimit -f` is not available");
        return;
    }
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot save to `keep.npy`: File too large"),
        "{err}"
    );
    assert!(err.contains("script.kl:1:1"), "{err}");
    assert_eq!(std::fs::read(d.path("keep.npy")).expect("kept"), old);
    assert_eq!(
        d.names(),
        ["keep.npy", "script.kl"],
        "no temporary file left"
    );
}

#[test]
fn save_replaces_the_file_a_link_names_and_keeps_its_permissions() {
    let d = Dir::new();
    let old = npy(1, &dict("<f8", "(1,)"), &f64_bytes(&[1.0]));
    let target = d.file("data.npy", &old);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        std::os::unix::fs::symlink("data.npy", d.path("link.npy")).expect("symlink");
    }
    #[cfg(not(unix))]
    std::fs::copy(&target, d.path("link.npy")).expect("copy");
    let link = d.path("link.npy");
    let out = run(&format!(
        "save(\"{l}\", arange(4));\nlet back: i64 = load(\"{t}\");\nprint(back);",
        l = link.display(),
        t = target
    ))
    .expect("saves");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(out, "[0, 1, 2, 3]\n");
        assert!(std::fs::symlink_metadata(&link)
            .expect("the link")
            .file_type()
            .is_symlink());
        let mode = std::fs::metadata(&target)
            .expect("the file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
    }
    let _ = out;
    assert_eq!(d.names(), ["data.npy", "link.npy"]);
}

#[test]
fn save_and_load_round_trip_every_dtype() {
    let d = Dir::new();
    let p = |n: &str| d.path(n).display().to_string();
    let src = format!(
        "save(\"{b}\", full(2, true));\nsave(\"{i}\", full(2, -3i32));\nsave(\"{l}\", arange(3));\n\
         save(\"{u}\", full(1, 7u32));\nsave(\"{w}\", full(1, 9u64));\nsave(\"{f}\", linspace(0.0, 1.0, 3) as f32);\n\
         save(\"{s}\", 2.5);\n\
         let b: bool = load(\"{b}\");\nlet i: i32 = load(\"{i}\");\nlet l: i64 = load(\"{l}\");\n\
         let u: u32 = load(\"{u}\");\nlet w: u64 = load(\"{w}\");\nlet f: f32 = load(\"{f}\");\n\
         print(b, i, l, u, w, f, load(\"{s}\"));",
        b = p("b.npy"),
        i = p("i.npy"),
        l = p("l.npy"),
        u = p("u.npy"),
        w = p("w.npy"),
        f = p("f.npy"),
        s = p("s.npy"),
    );
    assert_eq!(
        run(&src).expect("round trips"),
        "[true, true] [-3, -3] [0, 1, 2] [7] [9] [0.0, 0.5, 1.0] 2.5\n"
    );
    // Saving again replaces the file.
    let again = format!(
        "save(\"{l}\", arange(5));\nlet l: i64 = load(\"{l}\");\nprint(l);",
        l = p("l.npy")
    );
    assert_eq!(run(&again).expect("saves again"), "[0, 1, 2, 3, 4]\n");
    assert_eq!(d.names().len(), 7, "no temporary files: {:?}", d.names());
}

/// The `npy` fuzz target's body over its seeds (`fuzz/seeds/npy`) and every input that once
/// failed it (`fuzz/regressions/npy`): each file is loaded as every dtype, mapped, reduced and
/// saved again; errors are fine, panics are not.
#[test]
fn fuzz_npy_seeds_and_regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = Dir::new();
    let p = d.path("in.npy").display().to_string();
    let mut loaded = 0;
    let mut n = 0;
    for dir in ["fuzz/seeds/npy", "fuzz/regressions/npy"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let bytes = std::fs::read(e.expect("entry").path()).expect("readable input");
            std::fs::write(&p, &bytes).expect("writes");
            n += 1;
            for t in ["f64", "f32", "i32", "i64", "u32", "u64", "bool"] {
                let src = kiln::fuzzing::npy_script(t, &p);
                if run_with(&src, 1 << 24).is_ok() {
                    loaded += 1;
                }
            }
        }
    }
    assert!(n >= 10, "only {n} inputs");
    assert!(loaded >= 8, "only {loaded} loads succeeded");
}

/// A FIFO (or `/dev/null`, `/dev/stdout`) is written in place: renaming a temporary file over
/// it would replace the device with a regular file.
#[cfg(unix)]
#[test]
fn save_writes_a_fifo_in_place() {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let d = Dir::new();
    let fifo = d.path("pipe.npy");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: no `mkfifo`");
        return;
    }
    // Opened first, without blocking, so that `save`'s open for writing does not block.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("opens the FIFO");
    run(&format!("save(\"{}\", full(2, 1i32));", fifo.display())).expect("saves");
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).expect("reads");
    assert!(bytes.starts_with(b"\x93NUMPY"), "{bytes:?}");
    let kind = std::fs::symlink_metadata(&fifo)
        .expect("still there")
        .file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced");
    // Loading from it is refused at once instead of waiting for a writer.
    let err = run(&format!("let z = load(\"{}\");", fifo.display())).expect_err("a FIFO");
    assert!(err.contains("it is not a regular file"), "{err}");
}
