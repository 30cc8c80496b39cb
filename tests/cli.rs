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

#[test]
fn array_scripts_give_the_same_output_on_both_backends_and_round_trip_npy() {
    let dir = std::env::temp_dir().join(format!("kiln-cli-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let npy = dir.join("y.npy");
    let src = format!(
        "ufunc f<T: float>(x: T) -> T {{ x * x - 1.0 }}\n\
         reduce add<T: num>(a: T, b: T) -> T identity 0 {{ a + b }}\n\
         let y = f(linspace(0.0, 2.0, 5));\n\
         save(\"{p}\", y);\n\
         let z = load(\"{p}\");\n\
         print(z, reduce(add, z - y));\n\
         let w: f32 = load(\"{p}\");\n",
        p = npy.display()
    );
    let file = temp_file("npy.kl", src.as_bytes());
    let mut outs = Vec::new();
    for backend in ["cpu", "interp"] {
        let out = kiln(&["run", "--backend", backend, file.to_str().unwrap()], None);
        assert_eq!(
            out.status.code(),
            Some(1),
            "the f32 load fails: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "[-1.0, -0.75, 0.0, 1.25, 3.0] 0.0\n");
        let err = text(&out.stderr);
        assert!(
            err.contains("as an array of f32") && err.contains("npy.kl:7:"),
            "{err}"
        );
        outs.push(out.stdout);
    }
    assert_eq!(outs[0], outs[1]);
    // NumPy's format: the magic string and a little-endian f64 descriptor.
    let bytes = std::fs::read(&npy).expect("saved");
    assert!(bytes.starts_with(b"\x93NUMPY") && text(&bytes).contains("'descr': '<f8'"));
}

#[test]
fn emit_shows_cranelift_ir_and_machine_code() {
    let file = temp_file(
        "emit.kl",
        b"ufunc axpy<T: float>(a: T, x: T, y: T) -> T { a * x + y }\nfn sq(x: i64) -> i64 { x * x }\n",
    );
    let f = file.to_str().unwrap();
    let clif = kiln(
        &["emit", "clif", f, "--item", "axpy", "--types", "f32"],
        None,
    );
    assert_eq!(clif.status.code(), Some(0), "{}", text(&clif.stderr));
    let clif = text(&clif.stdout);
    assert!(
        clif.contains("ufunc loop `axpy<f32>`") && clif.contains("fmul.f32"),
        "{clif}"
    );
    let asm = kiln(&["emit", "asm", f, "--item", "sq"], None);
    assert_eq!(asm.status.code(), Some(0), "{}", text(&asm.stderr));
    let asm = text(&asm.stdout);
    assert!(
        asm.contains("scalar entry `sq`") && asm.contains("ret"),
        "{asm}"
    );
    let bad = kiln(&["emit", "asm", f, "--item", "nope"], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("no item named `nope`"));
}

/// Issue 12: the command line's own mistakes exit with 2 (clap's convention, and the
/// README's); everything else that fails exits with 1.
#[test]
fn usage_errors_exit_two_and_other_errors_one() {
    let f = temp_file(
        "ok.kl",
        b"fn f(x: f32) -> f32 { x }\nconst C: i64 = 3;\nprint(1);\n",
    );
    let path = f.to_str().expect("utf-8 path");
    for args in [
        vec!["emit", "bogus", path],
        vec!["run"],
        vec!["run", path, "--fuel", "abc"],
        vec!["run", path, "--backend", "bogus"],
        vec!["run", path, "--fuel", "10"],
        vec!["run", path, "--fuel", "10", "--backend", "cpu"],
        vec!["emit", "ir", path, "--types", "f32"],
    ] {
        let out = kiln(&args, None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("Usage") || err.contains("--help"),
            "{args:?} points to the usage: {err}"
        );
    }
    for (args, want) in [
        (
            vec!["emit", "ast", path, "--item", "nope"],
            "no item named `nope`",
        ),
        (
            vec!["emit", "ir", path, "--item", "ff"],
            "did you mean `f`?",
        ),
        (
            vec!["emit", "clif", path, "--item", "C"],
            "`C` is a constant",
        ),
        (vec!["check", "/nonexistent/x.kl"], "No such file"),
    ] {
        let out = kiln(&args, None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // A const is an item `emit ir` can show.
    let out = kiln(&["emit", "ir", path, "--item", "C"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("const 3"),
        "{}",
        text(&out.stdout)
    );
}

/// Issue 12 items 6 and 7: a source larger than 16 MiB is refused after reading that much
/// (`kiln run /dev/zero` used to fill memory), and so is an absurd thread count.
#[test]
fn unbounded_inputs_are_refused_quickly() {
    let start = Instant::now();
    let out = kiln(&["run", "/dev/zero"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("larger than 16 MiB"),
        "{}",
        text(&out.stderr)
    );
    let out = kiln(&["check", "/dev/urandom"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );

    // 200 consts that never finish: one budget for all of them (one each took 67 s).
    let spin: String = (0..200)
        .map(|i| format!("const S{i}: i64 = {{ var j = 0; while j >= 0 {{ j = j | 1; }} j }};\n"))
        .collect();
    let f = temp_file("spin_consts.kl", spin.as_bytes());
    let start = Instant::now();
    let out = kiln(&["check", f.to_str().expect("utf-8 path")], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("steps in all"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );

    let f = temp_file("threads.kl", b"print(reduce(add, linspace(0.0, 1.0, 5)));\nreduce add(a: f64, b: f64) -> f64 identity 0.0 { a + b }\n");
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["run", f.to_str().expect("utf-8 path")])
        .env("KILN_NUM_THREADS", "10000")
        .output()
        .expect("runs");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("KILN_NUM_THREADS=10000") && err.contains("at most 512"),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

/// Issue 12 item 9: `--fuel` bounds a script's own loop on the interpreter, and a corpus
/// case that loops fails instead of hanging `kiln test`: in the script (its step budget) and
/// in native code (its time budget).
#[test]
fn looping_scripts_and_corpus_cases_stop() {
    let f = temp_file("spin.kl", b"var i = 0;\nwhile true { i += 1; }\n");
    let out = kiln(
        &[
            "run",
            f.to_str().expect("utf-8 path"),
            "--backend",
            "interp",
            "--fuel",
            "1000",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("budget"),
        "{}",
        text(&out.stderr)
    );

    let dir = std::env::temp_dir().join(format!("kiln-cli-loops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("script_loop.kl"), "while true {}\n// out: never\n").expect("case");
    std::fs::write(
        dir.join("kernel_loop.kl"),
        "fn spin(x: i64) -> i64 { var i = x; while i >= 0 { i = i | 1; } i }\n// run: spin(1) == 0\n",
    )
    .expect("case");
    std::fs::write(dir.join("fine.kl"), "// run: 1 + 1 == 2\n").expect("case");
    let start = Instant::now();
    let out = kiln(
        &[
            "test",
            dir.to_str().expect("utf-8 path"),
            "--time-limit",
            "3",
        ],
        None,
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("1 passed, 2 failed"), "{stdout}");
    assert!(stdout.contains("step budget exhausted"), "{stdout}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );

    // Native code has no step budget: with the CPU alone, the time budget stops the loop.
    let opts = kiln::corpus::Options {
        bless: false,
        executors: vec![Box::new(kiln::Cpu::new().expect("a CPU back end"))],
        time_limit: Duration::from_secs(2),
        script_steps: kiln::corpus::DEFAULT_SCRIPT_STEPS,
    };
    let start = Instant::now();
    let report = kiln::corpus::run_dir(&dir, &opts, |_, _| {}).expect("runs");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(report.passed, 1, "{:?}", report.failed);
    let why: Vec<&str> = report.failed.iter().map(|(_, w)| w.as_str()).collect();
    assert!(
        why.iter().any(|w| w.contains("did not finish within 2 s")),
        "{why:?}"
    );
    // The interrupt is cleared for what runs next.
    let after = kiln::corpus::run_dir(&dir, &opts, |_, _| {}).expect("runs");
    assert_eq!(after.passed, 1, "{:?}", after.failed);
}

/// `kiln run s.kl | head -2`: once the reader is gone, Kiln stops quietly (SIGPIPE, as Unix
/// tools do) instead of panicking while it reports the broken pipe on a closed stderr.
#[test]
fn a_closed_pipe_ends_the_run_quietly() {
    use std::io::Read;
    let f = temp_file("many.kl", b"for i in 0..1000000 { print(i); }\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["run", f.to_str().expect("utf-8 path")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut first = [0u8; 16];
    child
        .stdout
        .take()
        .expect("piped")
        .read_exact(&mut first)
        .expect("reads the first lines");
    // The pipe is closed here.
    let out = child.wait_with_output().expect("finishes");
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{err}");
}
