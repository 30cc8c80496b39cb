//! The REPL as a person uses it: `kiln` started on a pseudo-terminal (rexpect), a session
//! with a syntax error, a multi-line item, tab completion, a redefinition, an endless loop (its progress
//! spinner shown after a second) interrupted with Ctrl-C (variables intact afterwards), a `:time`, and Ctrl-D to leave. Checks what the
//! screen shows.
#![cfg(unix)]

use rexpect::session::spawn_command;

const PROMPT: &str = "kiln> ";

#[test]
fn a_session_on_a_terminal() -> Result<(), rexpect::error::Error> {
    let dir = std::env::temp_dir().join(format!("kiln-pty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let history = dir.join("history");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.env("KILN_HISTORY", &history)
        .env("TERM", "xterm")
        .env("KILN_NUM_THREADS", "2");
    let mut p = spawn_command(cmd, Some(60_000))?;
    p.exp_string(":help")?;
    p.exp_string(PROMPT)?;

    // A syntax error points into the line just typed.
    p.send_line("ufunc f(x: f64) -> f64 { x +* 2.0 }")?;
    p.exp_string("<repl>:1:")?;
    p.exp_string(PROMPT)?;

    // An item over several lines: the open brace continues the input.
    p.send_line("ufunc f(x: f64) -> f64 {")?;
    p.send_line("    x * 2.0")?;
    p.send_line("}")?;
    p.exp_string("defined `f`")?;
    p.exp_string(PROMPT)?;

    p.send_line("let x = linspace(0.0, 1.0, 1000000);")?;
    p.exp_string(PROMPT)?;
    p.send_line("f(x)")?;
    p.exp_string("shape=(1000000,), dtype=f64)")?;
    p.exp_string(PROMPT)?;

    // Tab completes names: `tw<Tab>` becomes `twice`.
    p.send_line("ufunc twice(x: f64) -> f64 { 2.0 * x }")?;
    p.exp_string("defined `twice`")?;
    p.exp_string(PROMPT)?;
    p.send("tw\t")?;
    p.send_line("(21.0)")?;
    p.exp_string("42.0")?;
    p.exp_string(PROMPT)?;

    // Redefinition: later calls use the new definition.
    p.send_line("ufunc f(x: f64) -> f64 { x * 3.0 }")?;
    p.exp_string("redefined `f`")?;
    p.send_line("f(1.5)")?;
    p.exp_string("4.5")?;
    p.exp_string(PROMPT)?;

    // A runaway loop, interrupted.
    p.send_line("fn spin(n: i64) -> i64 { var i = n; while i >= 0 { i += 1; } i }")?;
    p.exp_string("defined `spin`")?;
    p.exp_string(PROMPT)?;
    p.send_line("spin(0)")?;
    // After a second, a spinner says how to stop it.
    p.exp_string("Ctrl-C interrupts")?;
    p.send_control('c')?;
    p.exp_string("interrupted")?;
    p.exp_string(PROMPT)?;

    // The session is intact.
    p.send_line("reduce add(a: f64, b: f64) -> f64 identity 0 { a + b }")?;
    p.exp_string("defined `add`")?;
    p.send_line("reduce(add, x)")?;
    p.exp_string("500000.0")?;
    p.exp_string(PROMPT)?;

    p.send_line(":time f(x)")?;
    p.exp_regex(r"median [0-9.]+ \S+ over [0-9]+ runs")?;
    p.exp_string(PROMPT)?;

    // Ctrl-D leaves; the history was kept.
    p.send_control('d')?;
    p.exp_eof()?;
    let saved = std::fs::read_to_string(&history).unwrap_or_default();
    assert!(saved.contains("reduce(add, x)"), "history: {saved}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
