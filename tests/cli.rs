//! The `kiln` command as a user meets it: exit status, diagnostics on stderr, and no crash
//! or hang on hostile input.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kiln(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the kiln binary starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input)
            .expect("writes stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("kiln finishes")
}

fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("temp file");
    p
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn run_prints_and_exits_zero() {
    let f = temp_file(
        "ok.kl",
        b"fn sq(x: f64) -> f64 { x * x }\nprint(sq(1.5), 7 / 2, 0.1 + 0.2);\n",
    );
    let out = kiln(&["run", f.to_str().expect("utf-8 path")], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2.25 3 0.30000000000000004\n");
}

#[test]
fn stdin_that_is_not_a_terminal_runs_as_a_script() {
    let out = kiln(&[], Some(b"print(1 + 1);"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2\n");
}

#[test]
fn compile_errors_exit_one_with_location() {
    let f = temp_file(
        "bad.kl",
        b"fn f(x: f32) -> f64 {\n    x\n}\nfn g() -> i64 { nope }\n",
    );
    let out = kiln(&["check", f.to_str().expect("utf-8 path")], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("bad.kl:2:5"), "{err}");
    assert!(err.contains("expected `f64`, found `f32`"), "{err}");
    assert!(
        err.contains("unknown name `nope`"),
        "both independent errors are reported: {err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn runtime_errors_name_kernel_and_line() {
    let f = temp_file(
        "div.kl",
        b"fn h(a: i64, b: i64) -> i64 {\n    a / b\n}\nprint(h(1, 2));\nprint(h(1, 0));\n",
    );
    let out = kiln(&["run", f.to_str().expect("utf-8 path")], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "0\n", "output before the error is kept");
    let err = text(&out.stderr);
    assert!(err.contains("division by zero"), "{err}");
    assert!(err.contains("div.kl:2:5"), "{err}");
    assert!(err.contains("in `h`"), "{err}");
}

#[test]
fn emit_ir_shows_a_specialisation() {
    let f = temp_file(
        "g.kl",
        b"ufunc axpy<T: float>(a: T, x: T, y: T) -> T { a * x + y }\n",
    );
    let out = kiln(
        &[
            "emit",
            "ir",
            f.to_str().expect("utf-8 path"),
            "--item",
            "axpy",
            "--types",
            "f32",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ir = text(&out.stdout);
    assert!(
        ir.starts_with("ufunc axpy<f32>(f32, f32, f32) -> f32 {"),
        "{ir}"
    );
    assert!(ir.contains("mul v0, v1"), "{ir}");
}

#[test]
fn hostile_inputs_fail_cleanly_and_quickly() {
    let deep_parens = format!("let x = {}1{};", "(-".repeat(50_000), ")".repeat(50_000));
    let deep_blocks = format!(
        "fn f() -> i64 {{ {}1{} }}",
        "{".repeat(50_000),
        "}".repeat(50_000)
    );
    let long_chain = format!("let x = 1{};", " + 1".repeat(200_000));
    let mut garbage = Vec::new();
    let mut state = 12345u64;
    while garbage.len() < 10 << 20 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        garbage.push(b"(){}[]<>;,.=+-*/%&|^!fnletvar0123 \nxyz\"@"[(state >> 33) as usize % 40]);
    }
    let mut invalid_utf8 = b"fn f() -> i64 { 1 }\n".to_vec();
    invalid_utf8.extend([0xff, 0xfe, b'\n']);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("deep_parens", deep_parens.into_bytes()),
        ("deep_blocks", deep_blocks.into_bytes()),
        ("long_chain", long_chain.into_bytes()),
        ("garbage_10mb", garbage),
        ("invalid_utf8", invalid_utf8),
        ("unterminated", b"fn f( { /* ".to_vec()),
        ("empty", Vec::new()),
    ];
    for (name, src) in cases {
        let f = temp_file(&format!("{name}.kl"), &src);
        let start = Instant::now();
        let out = kiln(&["check", f.to_str().expect("utf-8 path")], None);
        let took = start.elapsed();
        let err = text(&out.stderr);
        assert!(took < Duration::from_secs(20), "{name} took {took:?}");
        assert!(!err.contains("panicked"), "{name} panicked: {err}");
        if name == "empty" {
            assert!(out.status.success(), "{name}: {err}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{name} must be an error: {err}");
            assert!(err.contains("error"), "{name}: {err}");
        }
        if name == "invalid_utf8" {
            assert!(err.contains("not valid UTF-8"), "{err}");
            assert!(err.contains(":2:"), "the line of the bad byte: {err}");
        }
    }
}
