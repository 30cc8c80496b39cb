//! The deepest expression the parser accepts compiles and runs on an ordinary thread (2 MiB
//! stack, Rust's default for spawned threads), so embedding Kiln needs no special stack.

#[test]
fn deepest_accepted_nesting_fits_a_default_thread() {
    let depth = kiln_syntax::MAX_DEPTH as usize - 4;
    let expr = format!("{}x{}", "(1.0 + ".repeat(depth), ")".repeat(depth));
    let blocks = format!("{}x{}", "{ ".repeat(depth), " }".repeat(depth));
    let src = format!("fn f(x: f64) -> f64 {{ {expr} }}\nfn g(x: f64) -> f64 {{ {blocks} }}\nprint(f(1.0), g(2.0));");
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let c = kiln::compile("deep.kl", &src).expect("compiles");
            let mut out = Vec::new();
            let exec = kiln::Interpreter::new(1_000_000);
            kiln::script::Evaluator::new(&c, &exec)
                .run(&mut out)
                .expect("runs");
            String::from_utf8(out).expect("utf-8")
        })
        .expect("spawns");
    let out = handle.join().expect("no stack overflow");
    assert_eq!(out, format!("{:?} 2.0\n", 1.0 + (depth as f64)));
}
