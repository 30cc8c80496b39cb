//! `arange` with float arguments gives NumPy's values bit for bit, checked against NumPy's own
//! output (`tests/data/arange_numpy.txt`, written by `tests/data/arange_numpy.py`; CI has no
//! NumPy), and rejects a NaN or infinite argument with a message that says so.

use std::path::Path;

/// Runs `src` as a script on the interpreter: its output, or the rendered error.
fn run(src: &str) -> Result<String, String> {
    let c = kiln::compile("arange.kl", src).map_err(|e| e.to_string())?;
    let exec = kiln::Interpreter::new(1_000_000);
    let mut out = Vec::new();
    kiln::script::Evaluator::new(&c, &exec)
        .run(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).expect("utf-8"))
}

struct Case {
    dtype: String,
    args: String,
    bits: Vec<u64>,
}

fn fixture() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/arange_numpy.txt");
    let text = std::fs::read_to_string(&path).expect("the NumPy fixture");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let parts: Vec<&str> = l.split(" | ").map(str::trim).collect();
            assert_eq!(parts.len(), 3, "malformed fixture line: {l}");
            Case {
                dtype: parts[0].to_string(),
                args: parts[1].to_string(),
                bits: parts[2]
                    .split_whitespace()
                    .map(|h| u64::from_str_radix(h, 16).expect("hex bits"))
                    .collect(),
            }
        })
        .collect()
}

/// `[1, 2, 3]` as `print` shows an array of integers.
fn parse_list(line: &str) -> Vec<u64> {
    let inner = line
        .trim()
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not a printed array: {line}"));
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("an integer"))
        .collect()
}

#[test]
fn float_arange_matches_numpy_bit_for_bit() {
    let cases = fixture();
    assert!(cases.len() >= 40, "only {} fixture cases", cases.len());
    assert!(cases.iter().any(|c| c.dtype == "f32"));
    assert!(cases.iter().any(|c| c.args == "-1.0, 1.0, 0.3"));
    assert!(cases.iter().any(|c| c.args == "1.0, 0.0, -0.07"));
    let mut src = String::new();
    for (i, c) in cases.iter().enumerate() {
        src.push_str(&format!(
            "let a{i}: {} = arange({});\nprint(to_bits(a{i}));\n",
            c.dtype, c.args
        ));
    }
    let out = run(&src).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), cases.len());
    let mut failures = Vec::new();
    for (c, line) in cases.iter().zip(&lines) {
        let got = parse_list(line);
        if got != c.bits {
            let hex = |v: &[u64]| v.iter().map(|b| format!("{b:x}")).collect::<Vec<_>>();
            failures.push(format!(
                "{}: arange({})\n  NumPy: {:?}\n  Kiln:  {:?}",
                c.dtype,
                c.args,
                hex(&c.bits),
                hex(&got)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The example: the third element is NumPy's `-0.3999999999999999`, not `-0.4`.
#[test]
fn arange_steps_by_numpys_delta() {
    let out = run("print(arange(-1.0, 1.0, 0.3));").expect("runs");
    assert_eq!(
        out.trim(),
        "[-1.0, -0.7, -0.3999999999999999, -0.09999999999999987, 0.20000000000000018, \
         0.5000000000000002, 0.8000000000000003]"
    );
}

#[test]
fn arange_rejects_nan_and_infinite_arguments() {
    for (src, what, found) in [
        ("print(arange(0.0, 1.0, NAN));", "step", "NaN"),
        ("print(arange(0.0, 1.0, INF));", "step", "inf"),
        ("print(arange(0.0, -INF, 1.0));", "stop", "-inf"),
        ("print(arange(NAN, 1.0));", "start", "NaN"),
        ("print(arange(INF));", "stop", "inf"),
        (
            "let x: f32 = arange(0.0, 1.0, NAN); print(x);",
            "step",
            "NaN",
        ),
    ] {
        let err = run(src).expect_err(src);
        let want = format!("the {what} of `arange` must be finite, found {found}");
        assert!(err.contains(&want), "{src}: {err}");
        assert!(!err.contains("zero"), "{src}: {err}");
    }
    let err = run("print(arange(0.0, 1.0, 0.0));").expect_err("zero step");
    assert!(
        err.contains("the step of `arange` must not be zero"),
        "{err}"
    );
}

#[test]
fn arange_too_long_is_an_error_not_an_allocation() {
    let err = run("print(arange(0.0, 1.0, 1e-300));").expect_err("too many");
    assert!(
        err.contains("`arange` would make about 1.000e300 elements"),
        "{err}"
    );
    let err = run("print(arange(-1e308, 1e308, 1.0));").expect_err("too many");
    assert!(err.contains("more than this script may allocate"), "{err}");
}
