//! The IR text form round-trips: for every kernel the corpus compiles, reading the printed
//! IR back gives a module that verifies, prints identically, and computes the same results.

use kiln::ir::{parse_module, verify, write_module, Scalar};
use std::path::Path;

#[test]
fn printed_ir_reads_back_identically() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut kernels = 0;
    for dir in ["tests/corpus", "kernels"] {
        for case in kiln::corpus::cases(&root.join(dir)).expect("readable") {
            let src = std::fs::read_to_string(&case).expect("readable");
            let Ok(c) = kiln::compile("case.kl", &src) else {
                continue;
            };
            for m in [&c.module, &c.optimized] {
                let text = write_module(m);
                let back = parse_module(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{text}", case.display()));
                verify(&back).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
                assert_eq!(write_module(&back), text, "{}", case.display());
                for (i, k) in m.kernels.iter().enumerate() {
                    let args: Vec<Scalar> =
                        k.params.iter().map(|&t| Scalar::from_bits(t, 1)).collect();
                    let run = |m: &kiln::Module| {
                        kiln_interp::call(
                            m,
                            kiln::KernelId::new(i),
                            &args,
                            &mut kiln_interp::Fuel(100_000),
                        )
                    };
                    let (a, b) = (run(m), run(&back));
                    let same = match (&a, &b) {
                        (Ok(x), Ok(y)) => {
                            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.same(*q))
                        }
                        (Err(x), Err(y)) => x.kind == y.kind,
                        _ => false,
                    };
                    assert!(same, "{} `{}`: {a:?} vs {b:?}", case.display(), k.name);
                    kernels += 1;
                }
            }
        }
    }
    assert!(kernels > 500, "only {kernels} kernels checked");
}

#[test]
fn hand_written_ir_runs() {
    let text = "fn clamp01(f64) -> f64 {
block0(v0: f64):
    v1: f64 = const 0.0
    v2: f64 = const 1.0
    v3: f64 = max v0, v1
    v4: f64 = min v3, v2
    return v4
}

fn twice(f64) -> f64 {
block0(v0: f64):
    v1: f64 = call clamp01(v0)
    v2: f64 = add v1, v1
    v3: bool = lt v2, v0
    br v3, block1(v2), block2
block1(v4: f64):
    return v4
block2:
    return v2
}
";
    let m = parse_module(text).expect("parses");
    verify(&m).expect("verifies");
    assert_eq!(write_module(&m), text);
    let twice = m.find("twice").expect("twice");
    let r = kiln_interp::call(
        &m,
        twice,
        &[Scalar::F64(0.75)],
        &mut kiln_interp::Fuel(1000),
    )
    .expect("runs");
    assert_eq!(r, vec![Scalar::F64(1.5)]);
    let bad =
        parse_module("fn f() -> i64 {\nblock0:\n    return v9\n}\n").expect_err("unknown value");
    assert_eq!(bad.line, 3);
}
