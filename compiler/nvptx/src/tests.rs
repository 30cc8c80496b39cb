#![allow(unsafe_code)]
//! Back-end tests on hand-written IR. The corpus runs every case through the host flavour
//! (`llvm-host` executor) against the interpreter; PTX itself is checked in `tests/gpu.rs`.

use super::*;
use crate::host::{decode_error, HostCode};
use kiln_interp::ErrorKind;
use kiln_ir::{Scalar, ScalarType};

fn module(text: &str) -> Module {
    let m = kiln_ir::parse_module(text).expect("IR text parses");
    kiln_ir::verify(&m).expect("IR verifies");
    m
}

const DIV: &str = "
ufunc div(i32, i32) -> i32 {
block0(v0: i32, v1: i32):
    v2: i32 = div v0, v1  ; @3:7
    return v2
}
";

fn slot(s: Scalar) -> u64 {
    s.to_bits()
}

#[test]
fn integer_division_edges_on_the_host_flavour() {
    let m = module(DIV);
    let id = m.find("div").unwrap();
    let code = HostCode::compile(&m, Entry::Call { kernel: id }).unwrap();
    let call = |a: i32, b: i32| {
        let mut out = [0u64];
        let st = code.call(&[slot(Scalar::I32(a)), slot(Scalar::I32(b))], &mut out);
        (st, Scalar::from_bits(ScalarType::I32, out[0]))
    };
    assert_eq!(call(-7, 2), (0, Scalar::I32(-3)));
    assert_eq!(call(i32::MIN, -1), (0, Scalar::I32(i32::MIN)));
    let (st, _) = call(1, 0);
    assert_eq!(st, 1);
    assert_eq!(code.sites[0].kind, ErrorKind::DivisionByZero);
    assert_eq!(code.sites[0].loc.map(|l| (l.line, l.col)), Some((3, 7)));
}

#[test]
fn map_reports_the_first_failing_element() {
    let m = module(DIV);
    let id = m.find("div").unwrap();
    let code = HostCode::compile(&m, Entry::Map { kernel: id, uniform: 0 }).unwrap();
    let a: Vec<i32> = (0..37).collect();
    let mut b: Vec<i32> = vec![2; 37];
    let mut out = vec![0i32; 37];
    let ptrs = [a.as_ptr() as *mut u8, b.as_mut_ptr() as *mut u8, out.as_mut_ptr() as *mut u8];
    let e = unsafe { code.map(3, &ptrs, &[1, 1, 1], 37) };
    assert_eq!(decode_error(e), None);
    assert_eq!(out, a.iter().map(|x| x / 2).collect::<Vec<_>>());
    b[30] = 0;
    b[11] = 0;
    let e = unsafe { code.map(5, &ptrs, &[1, 1, 1], 37) };
    assert_eq!(decode_error(e), Some((11, 1)));
}

#[test]
fn ptx_smoke() {
    let m = module(DIV);
    let id = m.find("div").unwrap();
    for e in [Entry::Map { kernel: id, uniform: 0 }, Entry::Call { kernel: id }] {
        let p = compile(&m, e, Arch::NEWEST).unwrap();
        std::fs::write(format!("/tmp/smoke_{}.ptx", matches!(e, Entry::Call{..})), &p.text).unwrap();
    }
}
