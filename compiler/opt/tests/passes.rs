//! The passes on kernels lowered from source, with the verifier after each one.

use kiln_ir::{InstKind, Kernel, Module, Scalar};

/// Lowers every non-generic item of `src`.
fn lower(src: &str) -> Module {
    let (ast, errors) = kiln_syntax::parse(src);
    assert!(errors.is_empty(), "{errors:?}");
    let (program, diags) = kiln_front::check(0, src, &ast);
    assert!(diags.is_empty(), "{diags:?}");
    let mut lw = kiln_front::Lowerer::new(&program);
    for i in 0..program.items.len() {
        lw.item(kiln_front::ItemId(i as u32), &[]).expect("lowers");
    }
    let m = lw.finish();
    kiln_ir::verify(&m).expect("lowered IR verifies");
    m
}

fn optimized(src: &str) -> Module {
    let mut m = lower(src);
    kiln_opt::optimize(&mut m, true).expect("every pass keeps the IR valid");
    m
}

fn kernel<'m>(m: &'m Module, name: &str) -> &'m Kernel {
    m.kernel(m.find(name).expect("kernel exists"))
}

fn insts(k: &Kernel) -> Vec<&InstKind> {
    k.layout
        .iter()
        .flat_map(|&b| k.block(b).insts.iter().map(|&i| &k.inst(i).kind))
        .collect()
}

#[test]
fn inlining_removes_every_call() {
    let m = optimized("fn a(x: f64) -> f64 { x + 1.0 }\nfn b(x: f64) -> f64 { a(x) * a(x) }\nufunc c(x: f64) -> f64 { b(x) - a(x) }");
    assert_eq!(kiln_opt::call_free(&m).len(), m.kernels.len());
    let c = kernel(&m, "c");
    assert_eq!(
        c.layout.len(),
        1,
        "straight-line code is one block after merging:\n{}",
        kiln_ir::write_kernel(c)
    );
}

#[test]
fn constants_fold_but_traps_stay() {
    let m = optimized("fn k() -> i64 { (1 + 2) * 3 - (10 / 3) }\nfn t() -> i64 { 7 / (2 - 2) }");
    let k = kernel(&m, "k");
    assert_eq!(k.inst_count(), 2, "{}", kiln_ir::write_kernel(k));
    assert_eq!(insts(k)[0], &InstKind::Const(Scalar::I64(6)));
    let t = kernel(&m, "t");
    assert!(
        insts(t)
            .iter()
            .any(|i| matches!(i, InstKind::Binary(kiln_ir::BinaryOp::Div, ..))),
        "the trapping division is kept"
    );
}

#[test]
fn branches_on_constants_disappear() {
    let m = optimized(
        "const DEBUG: bool = false;\nfn f(x: f64) -> f64 { if DEBUG { x * 2.0 } else { x } }",
    );
    let f = kernel(&m, "f");
    assert_eq!(f.layout.len(), 1, "{}", kiln_ir::write_kernel(f));
    // Only the return is left, with the canonical-NaN select every float result gets.
    assert!(
        insts(f)
            .iter()
            .all(|i| !matches!(i, InstKind::Binary(..) | InstKind::Branch(..))),
        "the dead arm is gone: {}",
        kiln_ir::write_kernel(f)
    );
}

#[test]
fn dead_code_goes_but_asserts_stay() {
    let m = optimized("fn f(x: f64) -> f64 { let unused = sqrt(x) * 3.0; assert(x > 0.0); x }");
    let f = kernel(&m, "f");
    let kinds = insts(f);
    assert!(
        !kinds
            .iter()
            .any(|i| matches!(i, InstKind::Unary(kiln_ir::UnaryOp::Sqrt, _))),
        "{}",
        kiln_ir::write_kernel(f)
    );
    assert!(kinds.iter().any(|i| matches!(i, InstKind::Assert(_))));
}

#[test]
fn optimised_and_lowered_ir_agree() {
    let src = "fn f(n: i64) -> i64 { var s = 0; for i in 0..n { if i % 2 == 0 && i != 4 { s += i * 3; } else { s -= 1; } } s }";
    let lowered = lower(src);
    let opt = optimized(src);
    for n in [-3, 0, 1, 7, 20] {
        let run = |m: &Module| {
            kiln_interp::call(
                m,
                m.find("f").expect("f"),
                &[Scalar::I64(n)],
                &mut kiln_interp::Fuel(1_000_000),
            )
        };
        assert_eq!(run(&lowered), run(&opt), "n = {n}");
    }
}

#[test]
fn inlining_stops_at_the_growth_budget() {
    // Each level calls the one below ten times: full inlining would be 10^5 copies of `l0`.
    let mut src = String::from("fn l0(x: f64) -> f64 { x * 2.0 + 1.0 }\n");
    for i in 1..=5 {
        let calls: Vec<String> = (0..10).map(|_| format!("l{}(x)", i - 1)).collect();
        src.push_str(&format!(
            "fn l{i}(x: f64) -> f64 {{ {} }}\n",
            calls.join(" + ")
        ));
    }
    let m = optimized(&src);
    let top = kernel(&m, "l5");
    assert!(
        top.inst_count() <= 20_000 + 100,
        "{} instructions",
        top.inst_count()
    );
    assert!(
        insts(top).iter().any(|i| matches!(i, InstKind::Call(..))),
        "some calls stay calls"
    );
    let lowered = lower(&src);
    let run = |m: &Module| {
        kiln_interp::call(
            m,
            m.find("l5").expect("l5"),
            &[Scalar::F64(0.5)],
            &mut kiln_interp::Fuel(10_000_000),
        )
    };
    assert_eq!(
        run(&lowered),
        run(&m),
        "partly inlined code computes the same"
    );
}
