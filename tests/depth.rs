//! The deepest expression the parser accepts compiles and runs on an ordinary thread (2 MiB
//! stack, Rust's default for spawned threads), so embedding Kiln needs no special stack.

#[test]
fn deepest_accepted_nesting_fits_a_default_thread() {
    let depth = kiln_syntax::MAX_DEPTH as usize - 4;
    let expr = format!("{}x{}", "(1.0 + ".repeat(depth), ")".repeat(depth));
    let blocks = format!("{}x{}", "{ ".repeat(depth), " }".repeat(depth));
    // Also a script expression over an array (the runner rewrites and maps it) and a
    // flat chain of `+` (left-nested: `1 + 1 + ... + 1` is as deep as it is long).
    let chain = vec!["x"; depth].join(" + ");
    let src = format!("fn f(x: f64) -> f64 {{ {expr} }}\nfn g(x: f64) -> f64 {{ {blocks} }}\nprint(f(1.0), g(2.0));\nlet x = linspace(1.0, 2.0, 3);\nprint({chain});\nprint(reduce(add, {expr}));\nreduce add(a: f64, b: f64) -> f64 identity 0.0 {{ a + b }}");
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
    let d = depth as f64;
    assert_eq!(
        out,
        format!(
            "{:?} 2.0\n[{:?}, {:?}, {:?}]\n{:?}\n",
            1.0 + d,
            d,
            1.5 * d,
            2.0 * d,
            3.0 * d + 4.5
        )
    );
}
