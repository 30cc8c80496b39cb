//! A reader for the IR's text form (the inverse of [`crate::write`]), so IR-level tests can
//! be written without the front end, as Cranelift's `reader` allows.
//!
//! `parse_module(&write_module(m))` gives a module that prints identically. Value and block
//! names (`v3`, `block2`) are local to each kernel and may be used before the line that
//! defines them; calls name their callee (`call sq(v0)`), which may be defined anywhere in
//! the text. The result is not verified: run [`crate::verify()`] on it.

use std::collections::HashMap;

use crate::entities::{Block, Inst, KernelId, Value};
use crate::inst::{BinaryOp, BlockCall, InstKind, UnaryOp};
use crate::kernel::{Kernel, KernelKind, Module, SourceLoc};
use crate::types::{Scalar, ScalarType};

/// A syntax error in IR text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("IR text, line {line}: {message}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

fn ty(line: usize, s: &str) -> Result<ScalarType, ParseError> {
    ScalarType::from_name(s.trim())
        .map_or_else(|| err(line, format!("unknown type `{}`", s.trim())), Ok)
}

fn kind(line: usize, s: &str) -> Result<KernelKind, ParseError> {
    Ok(match s {
        "fn" => KernelKind::Fn,
        "ufunc" => KernelKind::Ufunc,
        "reduce" => KernelKind::Reduce,
        "identity" => KernelKind::Identity,
        "const" => KernelKind::Const,
        "thunk" => KernelKind::Thunk,
        "library" => KernelKind::Library,
        other => return err(line, format!("unknown kernel kind `{other}`")),
    })
}

/// One instruction line, split but not yet resolved.
struct InstLine<'s> {
    line: usize,
    inst: Inst,
    op: &'s str,
    operands: &'s str,
}

/// Parses a module: kernels separated by blank lines.
pub fn parse_module(text: &str) -> Result<Module, ParseError> {
    let lines: Vec<(usize, &str)> = text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect();
    let mut module = Module::default();
    // Callees by name, resolved once every kernel is known.
    let mut calls: Vec<(usize, Inst, String, usize)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (n, line) = lines[i];
        if line.trim().is_empty() {
            i += 1;
            continue;
        }
        let end = lines[i..]
            .iter()
            .position(|(_, l)| *l == "}")
            .map(|p| i + p)
            .ok_or(ParseError {
                line: n,
                message: "kernel without a closing `}`".into(),
            })?;
        let index = module.kernels.len();
        let (k, kernel_calls) = parse_kernel(&lines[i..end])?;
        calls.extend(
            kernel_calls
                .into_iter()
                .map(|(inst, name, line)| (index, inst, name, line)),
        );
        module.push(k);
        i = end + 1;
    }
    let ids: HashMap<String, KernelId> = module
        .kernels
        .iter()
        .enumerate()
        .map(|(i, k)| (k.name.clone(), KernelId::new(i)))
        .collect();
    for (k, inst, name, line) in calls {
        let Some(&id) = ids.get(&name) else {
            return err(line, format!("call of unknown kernel `{name}`"));
        };
        if let InstKind::Call(callee, _) = &mut module.kernels[k].insts[inst.index()].kind {
            *callee = id;
        }
    }
    Ok(module)
}

/// A call whose callee is known only by name yet: (instruction, callee name, line).
type PendingCall = (Inst, String, usize);

/// Parses one kernel (header line through the line before `}`); returns it and its calls
/// for the module to resolve.
fn parse_kernel(lines: &[(usize, &str)]) -> Result<(Kernel, Vec<PendingCall>), ParseError> {
    let (hn, header) = lines[0];
    let header = header.strip_suffix(" {").ok_or(ParseError {
        line: hn,
        message: "a kernel header ends with ` {`".into(),
    })?;
    let (kw, rest) = header.split_once(' ').ok_or(ParseError {
        line: hn,
        message: "expected `KIND NAME(TYPES)`".into(),
    })?;
    let open = rest.find('(').ok_or(ParseError {
        line: hn,
        message: "expected `(` after the kernel name".into(),
    })?;
    let close = rest[open..].find(')').map(|p| open + p).ok_or(ParseError {
        line: hn,
        message: "expected `)`".into(),
    })?;
    let name = &rest[..open];
    let params: Vec<ScalarType> = split_list(&rest[open + 1..close])
        .map(|t| ty(hn, t))
        .collect::<Result<_, _>>()?;
    let results = match rest[close + 1..].trim().strip_prefix("->") {
        None => vec![],
        Some(r) => {
            let r = r.trim();
            match r.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
                Some(list) => split_list(list)
                    .map(|t| ty(hn, t))
                    .collect::<Result<_, _>>()?,
                None => vec![ty(hn, r)?],
            }
        }
    };
    let mut k = Kernel::new(name, kind(hn, kw)?, vec![], results);
    k.params = params;
    // The entry block was created by `Kernel::new`; it is re-filled from the text below.
    k.layout.clear();
    k.blocks.clear();

    let mut values: HashMap<&str, Value> = HashMap::new();
    let mut blocks: HashMap<&str, Block> = HashMap::new();
    let mut inst_lines: Vec<InstLine<'_>> = Vec::new();
    let mut current: Option<Block> = None;
    // Pass 1: blocks, parameters and instruction results, so that any line may refer to any
    // value or block of the kernel.
    for &(n, line) in &lines[1..] {
        if !line.starts_with(' ') {
            let label = line.strip_suffix(':').ok_or(ParseError {
                line: n,
                message: "expected `blockN:` or an indented instruction".into(),
            })?;
            let (bname, params) = match label.split_once('(') {
                Some((b, p)) => (
                    b,
                    p.strip_suffix(')').ok_or(ParseError {
                        line: n,
                        message: "expected `)`".into(),
                    })?,
                ),
                None => (label, ""),
            };
            let b = k.create_block();
            if blocks.insert(bname, b).is_some() {
                return err(n, format!("`{bname}` is defined twice"));
            }
            for p in split_list(params) {
                let (v, t) = p.split_once(':').ok_or(ParseError {
                    line: n,
                    message: "expected `vN: TYPE`".into(),
                })?;
                let value = k.append_block_param(b, ty(n, t)?);
                if values.insert(v.trim(), value).is_some() {
                    return err(n, format!("`{}` is defined twice", v.trim()));
                }
            }
            current = Some(b);
            continue;
        }
        let Some(b) = current else {
            return err(n, "an instruction before the first block");
        };
        let text = line.trim();
        let text = text.split_once("  ; @").map_or(text, |(t, _)| t);
        let (defs, body) = match text.split_once(" = ") {
            Some((d, b)) => (d, b),
            None => ("", text),
        };
        let mut names = Vec::new();
        let mut tys = Vec::new();
        for d in split_list(defs) {
            let (v, t) = d.split_once(':').ok_or(ParseError {
                line: n,
                message: "expected `vN: TYPE = ...`".into(),
            })?;
            names.push(v.trim());
            tys.push(ty(n, t)?);
        }
        let loc = line.split_once("  ; @").map(|(_, l)| l).and_then(|l| {
            let (a, b) = l.trim().split_once(':')?;
            Some(SourceLoc {
                line: a.parse().ok()?,
                col: b.parse().ok()?,
                len: 0,
            })
        });
        let inst = k.append_inst(b, InstKind::Return(vec![]), &tys, loc);
        for (name, &v) in names.iter().zip(&k.inst(inst).results.clone()) {
            if values.insert(name, v).is_some() {
                return err(n, format!("`{name}` is defined twice"));
            }
        }
        let (op, operands) = body.split_once(' ').unwrap_or((body, ""));
        inst_lines.push(InstLine {
            line: n,
            inst,
            op,
            operands,
        });
    }
    // Pass 2: operands.
    let mut calls = Vec::new();
    for il in inst_lines {
        let n = il.line;
        let val = |s: &str| {
            values
                .get(s.trim())
                .copied()
                .map_or_else(|| err(n, format!("unknown value `{}`", s.trim())), Ok)
        };
        let vals = |s: &str| split_list(s).map(&val).collect::<Result<Vec<Value>, _>>();
        let target = |s: &str| -> Result<BlockCall, ParseError> {
            let s = s.trim();
            let (b, args) = match s.split_once('(') {
                Some((b, a)) => (b, vals(a.strip_suffix(')').unwrap_or(a))?),
                None => (s, vec![]),
            };
            let block = blocks
                .get(b)
                .copied()
                .map_or_else(|| err(n, format!("unknown block `{b}`")), Ok)?;
            Ok(BlockCall { block, args })
        };
        let exactly = |v: Vec<Value>, count: usize| {
            if v.len() == count {
                Ok(v)
            } else {
                err(n, format!("`{}` takes {count} operands", il.op))
            }
        };
        let kind = match il.op {
            "const" => {
                let t = k
                    .inst(il.inst)
                    .results
                    .first()
                    .map(|&r| k.value_type(r))
                    .ok_or(ParseError {
                        line: n,
                        message: "a constant needs a result".into(),
                    })?;
                InstKind::Const(scalar(n, t, il.operands)?)
            }
            "fma" => {
                let v = exactly(vals(il.operands)?, 3)?;
                InstKind::Fma(v[0], v[1], v[2])
            }
            "select" => {
                let v = exactly(vals(il.operands)?, 3)?;
                InstKind::Select(v[0], v[1], v[2])
            }
            "cast" => InstKind::Cast(val(il.operands)?),
            "bitcast" => InstKind::Bitcast(val(il.operands)?),
            "assert" => InstKind::Assert(val(il.operands)?),
            "return" => InstKind::Return(vals(il.operands)?),
            "jump" => InstKind::Jump(target(il.operands)?),
            "br" => {
                let parts = split_top(il.operands);
                let [c, t, e] = parts.as_slice() else {
                    return err(n, "expected `br COND, THEN, ELSE`");
                };
                InstKind::Branch(val(c)?, target(t)?, target(e)?)
            }
            "call" => {
                let open = il.operands.rfind('(').ok_or(ParseError {
                    line: n,
                    message: "expected `call NAME(ARGS)`".into(),
                })?;
                let args = vals(il.operands[open + 1..].trim_end_matches(')'))?;
                calls.push((il.inst, il.operands[..open].to_string(), n));
                InstKind::Call(KernelId(u32::MAX), args)
            }
            op => {
                if let Some(u) = UnaryOp::ALL.iter().find(|u| u.name() == op) {
                    InstKind::Unary(*u, val(il.operands)?)
                } else if let Some(b) = BinaryOp::ALL.iter().find(|b| b.name() == op) {
                    let v = exactly(vals(il.operands)?, 2)?;
                    InstKind::Binary(*b, v[0], v[1])
                } else {
                    return err(n, format!("unknown instruction `{op}`"));
                }
            }
        };
        k.insts[il.inst.index()].kind = kind;
    }
    if k.layout.is_empty() {
        return err(hn, "a kernel needs at least one block");
    }
    Ok((k, calls))
}

/// Splits on the commas outside parentheses: `v1, block1(v2, v3), block2`.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(s[start..].trim());
    parts
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

/// A constant as the writer prints it (Rust's `{:?}`).
fn scalar(line: usize, t: ScalarType, s: &str) -> Result<Scalar, ParseError> {
    let s = s.trim();
    let bad = || ParseError {
        line,
        message: format!("`{s}` is not a {t} constant"),
    };
    Ok(match t {
        ScalarType::Bool => Scalar::Bool(s.parse().map_err(|_| bad())?),
        ScalarType::I32 => Scalar::I32(s.parse().map_err(|_| bad())?),
        ScalarType::I64 => Scalar::I64(s.parse().map_err(|_| bad())?),
        ScalarType::U32 => Scalar::U32(s.parse().map_err(|_| bad())?),
        ScalarType::U64 => Scalar::U64(s.parse().map_err(|_| bad())?),
        ScalarType::F32 => Scalar::F32(s.parse().map_err(|_| bad())?),
        ScalarType::F64 => Scalar::F64(s.parse().map_err(|_| bad())?),
    })
}
