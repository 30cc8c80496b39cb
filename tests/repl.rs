//! The REPL's session (`kiln::repl::Session`), driven the way the editor drives it: items,
//! redefinitions, variables, bare expressions, errors pointing into the typed line, and the
//! commands. The terminal itself is tested in `tests/repl_pty.rs`.

use std::sync::Arc;

use kiln::repl::{Control, Session};
use kiln::{Error, Threads};

fn session() -> Session {
    Session::new(
        Arc::new(kiln::Cpu::new().expect("a CPU back end")),
        Threads::new(2).unwrap(),
    )
}

/// Runs one line; returns what it printed, or the rendered error.
fn line(s: &mut Session, input: &str) -> Result<String, String> {
    let mut out = Vec::new();
    match s.handle(input, &mut out) {
        Ok(_) => Ok(String::from_utf8(out).unwrap()),
        Err(Error::Compile(d)) => Err(d.render()),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn items_variables_and_bare_expressions() {
    let mut s = session();
    assert_eq!(
        line(&mut s, "ufunc twice(x: f64) -> f64 { 2.0 * x }").unwrap(),
        "defined `twice`\n"
    );
    assert_eq!(
        line(&mut s, "let x = linspace(0.0, 1.0, 1000001);").unwrap(),
        ""
    );
    let shown = line(&mut s, "twice(x)").unwrap();
    assert!(shown.starts_with("array([0.0, 2e-6, 4e-6, ..."), "{shown}");
    assert!(
        shown.trim_end().ends_with("shape=(1000001,), dtype=f64)"),
        "{shown}"
    );
    // Scalars print as `print` does; a trailing `;` is optional.
    assert_eq!(line(&mut s, "twice(21.0);").unwrap(), "42.0\n");
    assert_eq!(line(&mut s, "let (a, b) = (1, 2.5);").unwrap(), "");
    assert_eq!(line(&mut s, "a + 1").unwrap(), "2\n");
    assert_eq!(line(&mut s, "(b, a)").unwrap(), "(2.5, 1)\n");
    // `var`s stay assignable across inputs.
    line(&mut s, "var n = 1;").unwrap();
    line(&mut s, "n = n + 41;").unwrap();
    assert_eq!(line(&mut s, "n").unwrap(), "42\n");
    // A ufunc with two outputs over an array: a tuple of arrays, kept as one variable.
    line(&mut s, "ufunc sc(x: f64) -> (f64, f64) { (x, 2.0 * x) }").unwrap();
    line(&mut s, "let pair = sc(linspace(0.0, 1.0, 3));").unwrap();
    assert_eq!(
        line(&mut s, "pair").unwrap(),
        "(array([0.0, 0.5, 1.0], shape=(3,), dtype=f64), array([0.0, 1.0, 2.0], shape=(3,), dtype=f64))\n"
    );
    let (p0, p1) = ("let (u, v) = pair;", "u + v");
    line(&mut s, p0).unwrap();
    assert_eq!(
        line(&mut s, p1).unwrap(),
        "array([0.0, 1.5, 3.0], shape=(3,), dtype=f64)\n"
    );
    // print goes through as in a script.
    assert_eq!(line(&mut s, "print(\"n is\", n);").unwrap(), "n is 42\n");
}

#[test]
fn redefinitions_take_effect_and_dependents_follow() {
    let mut s = session();
    line(&mut s, "fn k() -> f64 { 1.0 }").unwrap();
    line(&mut s, "ufunc scaled(x: f64) -> f64 { k() * x }").unwrap();
    assert_eq!(line(&mut s, "scaled(5.0)").unwrap(), "5.0\n");
    assert_eq!(
        line(&mut s, "fn k() -> f64 { 3.0 }").unwrap(),
        "redefined `k`\n"
    );
    assert_eq!(line(&mut s, "scaled(5.0)").unwrap(), "15.0\n");
    let items = line(&mut s, ":items").unwrap();
    assert!(
        items.contains("fn k() -> f64") && items.contains("ufunc scaled(x: f64) -> f64"),
        "{items}"
    );
}

#[test]
fn errors_point_into_the_typed_line_and_lose_nothing() {
    let mut s = session();
    line(&mut s, "let keep = 7;").unwrap();
    let e = line(&mut s, "let y = keep +* 2;").unwrap_err();
    assert!(e.contains("<repl>:1:"), "{e}");
    assert!(
        e.contains("let y = keep +* 2;"),
        "the typed line is shown: {e}"
    );
    let e = line(&mut s, "let z = nope + 1;").unwrap_err();
    assert!(e.contains("<repl>:1:9"), "{e}");
    // A runtime error in a later statement keeps what ran before it.
    let e = line(&mut s, "let before = 1; let boom = keep / 0;").unwrap_err();
    assert!(
        e.contains("division by zero") && e.contains("<repl>:1:28"),
        "{e}"
    );
    assert!(
        e.contains("let before = 1; let boom = keep / 0;"),
        "the typed line is shown: {e}"
    );
    // An element of an array operation, the same way.
    line(&mut s, "ufunc inv(x: i64) -> i64 { 100 / x }").unwrap();
    let e = line(&mut s, "inv(arange(-2, 3))").unwrap_err();
    // The division is in `inv`, defined earlier: the error quotes it.
    assert!(
        e.contains("<inv>:1:28") && e.contains("at element [2]"),
        "{e}"
    );
    assert_eq!(line(&mut s, "before + keep").unwrap(), "8\n");
    // Multi-line input: line 2 of the input is line 2 in the message.
    let e = line(&mut s, "fn bad(a: i64) -> i64 {\n    a + true\n}").unwrap_err();
    assert!(e.contains("<repl>:2:"), "{e}");
    assert_eq!(line(&mut s, "keep").unwrap(), "7\n");
    let e = line(&mut s, ":frobnicate").unwrap_err();
    assert!(e.contains("unknown command"), "{e}");
}

#[test]
fn commands() {
    let mut s = session();
    line(
        &mut s,
        "/// Doubles.\nufunc twice<T: float>(x: T) -> T { 2.0 * x }",
    )
    .unwrap();
    line(&mut s, "let x = linspace(0.0, 1.0, 1000);").unwrap();
    assert_eq!(line(&mut s, ":type twice(1.0f32)").unwrap(), "f32\n");
    assert_eq!(line(&mut s, ":type (1, x)").unwrap(), "(i64, f64)\n");
    let doc = line(&mut s, ":doc twice").unwrap();
    assert!(
        doc.contains("ufunc twice<T: float>(x: T) -> T") && doc.contains("Doubles."),
        "{doc}"
    );
    let exp = line(&mut s, ":doc exp").unwrap();
    assert!(exp.starts_with("builtin exp<T: float>(T) -> T"), "{exp}");
    assert!(exp.contains("ulp (f64)") && exp.contains("Cody"), "{exp}");
    assert!(line(&mut s, ":doc linspace")
        .unwrap()
        .contains("script builtin"));
    let ir = line(&mut s, ":ir twice f32").unwrap();
    assert!(ir.contains("ufunc twice<f32>"), "{ir}");
    let clif = line(&mut s, ":clif twice f64").unwrap();
    assert!(clif.contains("function"), "{clif}");
    let asm = line(&mut s, ":asm twice f64").unwrap();
    assert!(asm.contains("machine code"), "{asm}");
    let vars = line(&mut s, ":vars").unwrap();
    assert!(vars.contains("x: f64 (array [1000])"), "{vars}");
    let t = line(&mut s, ":time twice(x)").unwrap();
    assert!(t.starts_with("median ") && t.contains("elements/s"), "{t}");
    assert_eq!(line(&mut s, ":threads 1").unwrap(), "1 threads\n");
    assert!(line(&mut s, ":help").unwrap().contains(":time EXPR"));
    let dir = std::env::temp_dir().join(format!("kiln-repl-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("k.kl");
    std::fs::write(&file, "fn three() -> i64 { 3 }\nprint(three());\n").unwrap();
    let loaded = line(&mut s, &format!(":load {}", file.display())).unwrap();
    assert!(
        loaded.starts_with("3\n") && loaded.contains("1 item(s) `three`"),
        "{loaded}"
    );
    std::fs::write(&file, "fn three() -> i64 { 4 }\n").unwrap();
    line(&mut s, ":reload").unwrap();
    assert_eq!(line(&mut s, "three()").unwrap(), "4\n");
    let _ = std::fs::remove_dir_all(&dir);
    let mut out = Vec::new();
    assert_eq!(s.handle(":quit", &mut out).unwrap(), Control::Quit);
}

/// Issue 12 item 16: `:type` with nothing to type, and `:time` of an expression with no
/// value (`save`), get their own answers; the session goes on after each.
#[test]
fn commands_without_a_value_are_answered() {
    let mut s = session();
    let e = line(&mut s, ":type").unwrap_err();
    assert!(e.contains(":type needs an expression"), "{e}");
    assert!(!e.contains("unexpected"), "{e}");
    let dir = std::env::temp_dir().join(format!("kiln-repl-time-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.npy");
    line(&mut s, "let x = linspace(0.0, 1.0, 1000);").unwrap();
    let shown = line(&mut s, &format!(":time save(\"{}\", x)", path.display())).unwrap();
    assert!(shown.starts_with("median "), "{shown}");
    assert!(path.exists());
    // A value still gets its rate.
    let shown = line(&mut s, ":time x * 2.0").unwrap();
    assert!(shown.contains("elements/s"), "{shown}");
    assert_eq!(line(&mut s, ":type x").unwrap(), "f64\n");
}
