//! Entry points: the GPU kernels the runtime launches, built around the kernels' functions.
//!
//! Every entry is written as *per-thread* functions (internal, always inlined) and thin
//! wrappers: on NVPTX the wrappers read the thread and block indices and synchronise through
//! shared memory; on the host ([`Flavor::Host`], used by tests to run exactly this code on the
//! CPU) they take the indices as arguments and [`crate::host`] plays the grid, block by block
//! and step by step. The per-thread code is the same text for both.
//!
//! **Ufuncs** (`kiln_map`): operands are `p_j` (inputs, then outputs) with element strides
//! `s_j`, over `n` elements. Thread `tid` of `nth` handles groups `g = tid, tid + nth, …` of
//! [`vector_width`] consecutive elements (a grid-stride loop). A full group whose varying
//! operands all have stride 1 and aligned pointers moves through 16-byte vector loads and
//! stores; other groups go element by element with strides. Inputs named uniform at compile
//! time (broadcast scalars) are read once.
//!
//! **Reductions** (`kiln_reduce` then `kiln_reduce_final`, both with [`BLOCK`] threads per
//! block): thread `tid` of `lanes` folds its elements in order into a private accumulator —
//! groups `tid, tid + lanes, …` of `width` elements when the combine is commutative, a
//! contiguous range otherwise — then each block combines its threads' results in a fixed
//! pairwise tree (`t ⊕= t + s` for `s = 1, 2, 4, …`, which keeps index order, so an
//! associative combine need not commute), and block 0..G's results are folded the same way
//! by one block, then into the accumulator. The order depends only on `n`, `lanes` and the
//! grid, so a result is the same on every run. With `lanes = 8`, `width = 1` and one block
//! this is exactly the CPU's order (`kiln_ir::reduce`), which the runtime uses where results
//! must match the CPU bit for bit.
//!
//! **Errors**: a failing element `i` with status `c` does `atomicMin(err, i << 16 | c)` on a
//! word the host set to `u64::MAX`; the thread stops, the others go on. The host reads the
//! smallest failing index and its site: the same element the CPU reports first.

use std::fmt::Write;

use kiln_ir::{KernelId, Module, ScalarType};

use crate::ll::{has_status, mem_size, mem_ty, reg_ty, return_type, Unit};
use crate::BackendError;

/// Threads per block of every reduction kernel (the shared-memory tree is this wide).
pub const BLOCK: u32 = 256;

/// What the generated code is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// GPU kernels (`nvptx64-nvidia-cuda`).
    Nvptx,
    /// The same per-thread code with host wrappers, for running on the CPU in tests.
    Host,
}

/// What to compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    /// One call with scalar arguments (`kiln_call`).
    Call {
        /// The kernel.
        kernel: KernelId,
    },
    /// A ufunc over arrays (`kiln_map`); bit `j` of `uniform` marks input `j` as a
    /// broadcast scalar.
    Map {
        /// The kernel applied to each element.
        kernel: KernelId,
        /// Inputs with stride 0 in every launch.
        uniform: u64,
    },
    /// A reduction (`kiln_reduce`, `kiln_reduce_final`).
    Reduce {
        /// Applied to the inputs first; `None`: one input, reduced as is.
        map: Option<KernelId>,
        /// The `reduce` item's combine kernel.
        combine: KernelId,
        /// Elements per group of the commutative order: `1` for the CPU's order, or
        /// [`vector_width`] for 16-byte loads.
        width: u32,
    },
}

/// Elements per vector group of a kernel over operands of `types`: 16 bytes of the
/// narrowest operand, at most 4 (so `f64` moves as `<2 x double>`, `f32` as `<4 x float>`).
pub fn vector_width(types: &[ScalarType]) -> u32 {
    let narrowest = types.iter().map(|&t| mem_size(t)).min().unwrap_or(8);
    (16 / narrowest).clamp(1, 4)
}

/// The input types of a reduction: the map's parameters, or the combine's type when there
/// is no map (one input reduced as is).
pub fn reduce_inputs(m: &Module, map: Option<KernelId>, combine: KernelId) -> Vec<ScalarType> {
    match map {
        Some(f) => m.kernel(f).params.clone(),
        None => vec![m.kernel(combine).results[0]],
    }
}

/// Text with fresh names.
struct Text {
    out: String,
    n: usize,
}

impl Text {
    fn fresh(&mut self, p: &str) -> String {
        self.n += 1;
        format!("{p}{}", self.n)
    }
    fn l(&mut self, s: impl AsRef<str>) {
        self.out.push_str("  ");
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }
    fn label(&mut self, s: &str) {
        let _ = writeln!(self.out, "{s}:");
    }
    /// Loads a value of `ty` from `ptr` and converts it to its register type.
    fn load(&mut self, ty: ScalarType, ptr: &str) -> String {
        let v = self.fresh("%ld");
        self.l(format!("{v} = load {}, ptr {ptr}", mem_ty(ty)));
        self.mem_to_reg(ty, &v)
    }
    fn mem_to_reg(&mut self, ty: ScalarType, v: &str) -> String {
        if ty != ScalarType::Bool {
            return v.to_string();
        }
        let b = self.fresh("%bool");
        self.l(format!("{b} = icmp ne i8 {v}, 0"));
        b
    }
    fn reg_to_mem(&mut self, ty: ScalarType, v: &str) -> String {
        if ty != ScalarType::Bool {
            return v.to_string();
        }
        let b = self.fresh("%z");
        self.l(format!("{b} = zext i1 {v} to i8"));
        b
    }
    fn store(&mut self, ty: ScalarType, v: &str, ptr: &str) {
        let m = self.reg_to_mem(ty, v);
        self.l(format!("store {} {m}, ptr {ptr}", mem_ty(ty)));
    }
    /// `&p[i]` for elements of `ty`.
    fn gep(&mut self, ty: ScalarType, p: &str, i: &str) -> String {
        let a = self.fresh("%a");
        self.l(format!(
            "{a} = getelementptr {}, ptr {p}, i64 {i}",
            mem_ty(ty)
        ));
        a
    }
    /// Records failure `status` (i32) of element `index` and returns from the function.
    fn fail(&mut self, err: &str, index: &str, status: &str) {
        let s = self.fresh("%fail_st");
        let i = self.fresh("%fail_i");
        let c = self.fresh("%fail_c");
        self.l(format!("{s} = zext i32 {status} to i64"));
        self.l(format!("{i} = shl i64 {index}, 16"));
        self.l(format!("{c} = or i64 {i}, {s}"));
        self.l(format!("atomicrmw umin ptr {err}, i64 {c} monotonic"));
        self.l("ret void");
    }
    /// Calls kernel `name` (which returns a status) and continues in a new block if it
    /// succeeded; on failure reports element `index`. Returns the results.
    fn call_checked(
        &mut self,
        m: &Module,
        unit: &mut Unit,
        id: KernelId,
        args: &[String],
        err: &str,
        index: &str,
    ) -> Vec<String> {
        let k = m.kernel(id);
        let name = unit.function(id);
        let ret = return_type(m, id);
        let typed: Vec<String> = args
            .iter()
            .zip(&k.params)
            .map(|(a, &t)| format!("{} {a}", reg_ty(t)))
            .collect();
        let r = self.fresh("%r");
        self.l(format!("{r} = call {ret} {name}({})", typed.join(", ")));
        if !has_status(k.kind) {
            if k.results.len() == 1 {
                return vec![r];
            }
            return (0..k.results.len())
                .map(|i| {
                    let v = self.fresh("%res");
                    self.l(format!("{v} = extractvalue {ret} {r}, {i}"));
                    v
                })
                .collect();
        }
        let st = self.fresh("%st");
        let ok = self.fresh("%ok");
        let (good, bad) = (self.fresh("good"), self.fresh("bad"));
        self.l(format!("{st} = extractvalue {ret} {r}, 0"));
        self.l(format!("{ok} = icmp eq i32 {st}, 0"));
        self.l(format!("br i1 {ok}, label %{good}, label %{bad}"));
        self.label(&bad);
        self.fail(err, index, &st);
        self.label(&good);
        (0..k.results.len())
            .map(|i| {
                let v = self.fresh("%res");
                self.l(format!("{v} = extractvalue {ret} {r}, {}", i + 1));
                v
            })
            .collect()
    }
}

/// The operands of a map or reduction entry — pointers, element strides, `n`, the error
/// word — as a parameter list, which is also how they are passed on (LLVM spells typed
/// arguments and parameters alike).
fn operand_params(count: usize) -> String {
    let mut ps: Vec<String> = (0..count).map(|j| format!("ptr %p{j}")).collect();
    ps.extend((0..count).map(|j| format!("i64 %s{j}")));
    ps.push("i64 %n".into());
    ps.push("ptr %err".into());
    ps.join(", ")
}

/// Loads operand parameters from 8-byte slots at `%a` (host wrappers), in the order of
/// [`operand_params`].
fn unpack_operands(t: &mut Text, count: usize) {
    for j in 0..2 * count + 2 {
        let a = t.fresh("%slot");
        t.l(format!("{a} = getelementptr i64, ptr %a, i64 {j}"));
        let (name, ty) = match j {
            j if j < count => (format!("%p{j}"), "ptr"),
            j if j < 2 * count => (format!("%s{}", j - count), "i64"),
            j if j == 2 * count => ("%n".to_string(), "i64"),
            _ => ("%err".to_string(), "ptr"),
        };
        t.l(format!("{name} = load {ty}, ptr {a}"));
    }
}

/// The per-element work of a map or reduction: how inputs become values.
struct Operands<'a> {
    /// Input types, then output types.
    types: &'a [ScalarType],
    inputs: usize,
    uniform: u64,
}

impl Operands<'_> {
    fn varying(&self, j: usize) -> bool {
        j >= self.inputs || self.uniform & (1 << j) == 0
    }
}

/// Emits, in `t`, the load of the uniform inputs (`%u<j>`) and `%vok`: whether the varying
/// operands allow vector access (stride 1 and aligned), for groups of `width`.
fn preamble(t: &mut Text, ops: &Operands, width: u32) -> Vec<Option<String>> {
    let mut uniform = Vec::new();
    for (j, &ty) in ops.types[..ops.inputs].iter().enumerate() {
        uniform.push((!ops.varying(j)).then(|| t.load(ty, &format!("%p{j}"))));
    }
    let mut vok = if width > 1 {
        "true".to_string()
    } else {
        "false".to_string()
    };
    if width > 1 {
        for (j, &ty) in ops.types.iter().enumerate() {
            if !ops.varying(j) {
                continue;
            }
            let align = (width * mem_size(ty)).min(16) as i64;
            let (s1, pi, lo, al, a1, a2) = (
                t.fresh("%s1_"),
                t.fresh("%pi"),
                t.fresh("%lo"),
                t.fresh("%al"),
                t.fresh("%v"),
                t.fresh("%v"),
            );
            t.l(format!("{s1} = icmp eq i64 %s{j}, 1"));
            t.l(format!("{pi} = ptrtoint ptr %p{j} to i64"));
            t.l(format!("{lo} = and i64 {pi}, {}", align - 1));
            t.l(format!("{al} = icmp eq i64 {lo}, 0"));
            t.l(format!("{a1} = and i1 {s1}, {al}"));
            t.l(format!("{a2} = and i1 {vok}, {a1}"));
            vok = a2;
        }
    }
    t.l(format!("%vok = or i1 {vok}, false"));
    uniform
}

/// The per-element work inside [`group_loop`]: `(text, inputs, index) -> outputs`.
type ElementFn<'a> = dyn FnMut(&mut Text, Vec<String>, &str) -> Vec<String> + 'a;

/// Emits `body` for a group of elements `%base .. %base + width` as vectors (when `%vok` and
/// the group is full) or element by element, inside a grid-stride loop over groups
/// `tid, tid + nth, …`. `element(t, inputs, index)` returns the output values (for maps) and
/// may `fail`. Ends in block `done`.
fn group_loop(
    t: &mut Text,
    ops: &Operands,
    width: u32,
    uniform: &[Option<String>],
    element: &mut ElementFn,
) {
    let w = width as i64;
    t.l("%gp = alloca i64");
    t.l("store i64 %tid, ptr %gp");
    t.l("br label %head");
    t.label("head");
    t.l("%g = load i64, ptr %gp");
    t.l(format!("%base = mul i64 %g, {w}"));
    t.l("%more = icmp ult i64 %base, %n");
    t.l("br i1 %more, label %body, label %done");
    t.label("body");
    t.l(format!("%end = add i64 %base, {w}"));
    t.l("%full = icmp ule i64 %end, %n");
    t.l("%vec = and i1 %full, %vok");
    t.l("br i1 %vec, label %vector, label %lane0");

    // Vector path: whole groups, 16-byte accesses.
    t.label("vector");
    let mut lanes_in: Vec<Vec<String>> = vec![Vec::new(); width as usize];
    for (j, &ty) in ops.types[..ops.inputs].iter().enumerate() {
        match &uniform[j] {
            Some(u) => lanes_in.iter_mut().for_each(|l| l.push(u.clone())),
            None => {
                let align = (width * mem_size(ty)).min(16);
                let a = t.gep(ty, &format!("%p{j}"), "%base");
                let v = t.fresh("%vl");
                let mt = mem_ty(ty);
                t.l(format!("{v} = load <{w} x {mt}>, ptr {a}, align {align}"));
                for (e, lane) in lanes_in.iter_mut().enumerate() {
                    let x = t.fresh("%x");
                    t.l(format!("{x} = extractelement <{w} x {mt}> {v}, i64 {e}"));
                    let x = t.mem_to_reg(ty, &x);
                    lane.push(x);
                }
            }
        }
    }
    let mut outs: Vec<Vec<String>> = Vec::new();
    for (e, lane) in lanes_in.into_iter().enumerate() {
        let i = t.fresh("%i");
        t.l(format!("{i} = add i64 %base, {e}"));
        outs.push(element(t, lane, &i));
    }
    for (o, &ty) in ops.types[ops.inputs..].iter().enumerate() {
        let j = ops.inputs + o;
        let mt = mem_ty(ty);
        let mut acc = "poison".to_string();
        for (e, lane) in outs.iter().enumerate() {
            let m = t.reg_to_mem(ty, &lane[o]);
            let v = t.fresh("%vs");
            t.l(format!(
                "{v} = insertelement <{w} x {mt}> {acc}, {mt} {m}, i64 {e}"
            ));
            acc = v;
        }
        let align = (width * mem_size(ty)).min(16);
        let a = t.gep(ty, &format!("%p{j}"), "%base");
        t.l(format!("store <{w} x {mt}> {acc}, ptr {a}, align {align}"));
    }
    t.l("br label %latch");

    // Element by element, with strides.
    for e in 0..width {
        t.label(&format!("lane{e}"));
        let i = t.fresh("%i");
        let inb = t.fresh("%in");
        t.l(format!("{i} = add i64 %base, {e}"));
        t.l(format!("{inb} = icmp ult i64 {i}, %n"));
        t.l(format!("br i1 {inb}, label %do{e}, label %latch"));
        t.label(&format!("do{e}"));
        let mut ins = Vec::new();
        for (j, &ty) in ops.types[..ops.inputs].iter().enumerate() {
            match &uniform[j] {
                Some(u) => ins.push(u.clone()),
                None => {
                    let off = t.fresh("%off");
                    t.l(format!("{off} = mul i64 {i}, %s{j}"));
                    let a = t.gep(ty, &format!("%p{j}"), &off);
                    ins.push(t.load(ty, &a));
                }
            }
        }
        let results = element(t, ins, &i);
        for (o, &ty) in ops.types[ops.inputs..].iter().enumerate() {
            let j = ops.inputs + o;
            let off = t.fresh("%off");
            t.l(format!("{off} = mul i64 {i}, %s{j}"));
            let a = t.gep(ty, &format!("%p{j}"), &off);
            t.store(ty, &results[o], &a);
        }
        let next = if e + 1 < width {
            format!("lane{}", e + 1)
        } else {
            "latch".into()
        };
        t.l(format!("br label %{next}"));
    }
    t.label("latch");
    t.l("%gn = add i64 %g, %nth");
    t.l("store i64 %gn, ptr %gp");
    t.l("br label %head");
    t.label("done");
}

/// A loop over thread `%tid`'s contiguous share of `0..%n` (`ceil(n / nth)` elements each),
/// in order, with the index in `%i`; `body` may branch but must end in the block it
/// continues in. Ends in block `done`.
fn range_loop(t: &mut Text, body: &mut dyn FnMut(&mut Text)) {
    t.l("%n1 = add i64 %n, %nth");
    t.l("%n2 = sub i64 %n1, 1");
    t.l("%chunk = udiv i64 %n2, %nth");
    t.l("%start = mul i64 %tid, %chunk");
    t.l("%stop0 = add i64 %start, %chunk");
    t.l("%short = icmp ult i64 %stop0, %n");
    t.l("%stop = select i1 %short, i64 %stop0, i64 %n");
    t.l("%ip = alloca i64");
    t.l("store i64 %start, ptr %ip");
    t.l("br label %head");
    t.label("head");
    t.l("%i = load i64, ptr %ip");
    t.l("%more = icmp ult i64 %i, %stop");
    t.l("br i1 %more, label %body, label %done");
    t.label("body");
    body(t);
    t.l("%inext = add i64 %i, 1");
    t.l("store i64 %inext, ptr %ip");
    t.l("br label %head");
    t.label("done");
}

/// Folds `x` (register type `ty`) into the accumulator at `%accp`/`%okp` with `combine`;
/// a failure reports element `index`.
fn fold(t: &mut Text, m: &Module, unit: &mut Unit, combine: KernelId, x: &str, index: &str) {
    let ty = m.kernel(combine).results[0];
    let (has, comb, first, join) = (
        t.fresh("%has"),
        t.fresh("comb"),
        t.fresh("first"),
        t.fresh("join"),
    );
    let okv = t.fresh("%okv");
    t.l(format!("{okv} = load i8, ptr %okp"));
    t.l(format!("{has} = icmp ne i8 {okv}, 0"));
    t.l(format!("br i1 {has}, label %{comb}, label %{first}"));
    t.label(&comb);
    let a = t.load(ty, "%accp");
    let r = t.call_checked(m, unit, combine, &[a, x.to_string()], "%err", index);
    t.store(ty, &r[0], "%accp");
    t.l(format!("br label %{join}"));
    t.label(&first);
    t.store(ty, x, "%accp");
    t.l("store i8 1, ptr %okp");
    t.l(format!("br label %{join}"));
    t.label(&join);
}

/// A compiled entry's LLVM text and what the runtime needs to launch it.
pub struct EntryText {
    /// The whole LLVM module.
    pub ll: String,
    /// Elements per vector group (maps and reductions).
    pub width: u32,
}

/// Builds the LLVM module text for `entry`.
pub fn emit(
    m: &Module,
    entry: Entry,
    flavor: Flavor,
    unit: &mut Unit,
) -> Result<EntryText, BackendError> {
    let mut t = Text {
        out: String::new(),
        n: 0,
    };
    let mut width = 1;
    match entry {
        Entry::Call { kernel } => call_entry(&mut t, m, unit, kernel, flavor),
        Entry::Map { kernel, uniform } => {
            let k = m.kernel(kernel);
            let types: Vec<ScalarType> = k.params.iter().chain(&k.results).copied().collect();
            width = vector_width(&types);
            map_entry(&mut t, m, unit, kernel, uniform, &types, width, flavor);
        }
        Entry::Reduce {
            map,
            combine,
            width: w,
        } => {
            width = w;
            reduce_entries(&mut t, m, unit, map, combine, w, flavor)?;
        }
    }
    unit.emit_pending(m)?;
    let mut ll = String::new();
    for decl in unit.declarations.values() {
        ll.push_str(decl);
        ll.push('\n');
    }
    if flavor == Flavor::Nvptx {
        for s in ["tid.x", "ctaid.x", "ntid.x", "nctaid.x"] {
            let _ = writeln!(ll, "declare i32 @llvm.nvvm.read.ptx.sreg.{s}()");
        }
        ll.push_str("declare void @llvm.nvvm.barrier0()\n");
    }
    ll.push('\n');
    ll.push_str(&unit.functions);
    ll.push_str(&t.out);
    Ok(EntryText { ll, width })
}

/// Marks `@name` as a kernel (NVPTX) via `nvvm.annotations`.
fn kernel_annotations(t: &mut Text, names: &[&str]) {
    let mut refs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let _ = writeln!(t.out, "!{i} = !{{ptr @{name}, !\"kernel\", i32 1}}");
        refs.push(format!("!{i}"));
    }
    let _ = writeln!(t.out, "!nvvm.annotations = !{{{}}}", refs.join(", "));
}

/// `kiln_call`: arguments and results in 8-byte slots, as the CPU's scalar entry.
fn call_entry(t: &mut Text, m: &Module, unit: &mut Unit, kernel: KernelId, flavor: Flavor) {
    let k = m.kernel(kernel);
    let _ = writeln!(
        t.out,
        "define internal i32 @call_body(ptr %args, ptr %results) alwaysinline {{"
    );
    t.label("entry");
    let mut args = Vec::new();
    for (j, &ty) in k.params.iter().enumerate() {
        let a = t.gep(ScalarType::U64, "%args", &j.to_string());
        args.push(t.load(ty, &a));
    }
    // The status goes into the return value instead of an error word.
    let name = unit.function(kernel);
    let ret = return_type(m, kernel);
    let typed: Vec<String> = args
        .iter()
        .zip(&k.params)
        .map(|(a, &ty)| format!("{} {a}", reg_ty(ty)))
        .collect();
    t.l(format!("%r = call {ret} {name}({})", typed.join(", ")));
    let first = if has_status(k.kind) {
        t.l(format!("%st = extractvalue {ret} %r, 0"));
        t.l("%ok = icmp eq i32 %st, 0");
        t.l("br i1 %ok, label %good, label %bad");
        t.label("bad");
        t.l("ret i32 %st");
        t.label("good");
        1
    } else {
        0
    };
    for (i, &ty) in k.results.iter().enumerate() {
        let v = if !has_status(k.kind) && k.results.len() == 1 {
            "%r".to_string()
        } else {
            let v = t.fresh("%res");
            t.l(format!("{v} = extractvalue {ret} %r, {}", i + first));
            v
        };
        let a = t.gep(ScalarType::U64, "%results", &i.to_string());
        t.store(ty, &v, &a);
    }
    t.l("ret i32 0");
    t.out.push_str("}\n\n");
    match flavor {
        Flavor::Host => {
            t.out.push_str(
                "define i32 @kiln_call(ptr %args, ptr %results) {\nentry:\n  \
                 %st = call i32 @call_body(ptr %args, ptr %results)\n  ret i32 %st\n}\n",
            );
        }
        Flavor::Nvptx => {
            t.out.push_str(
                "define void @kiln_call(ptr %args, ptr %results, ptr %status) {\nentry:\n  \
                 %st = call i32 @call_body(ptr %args, ptr %results)\n  \
                 store i32 %st, ptr %status\n  ret void\n}\n",
            );
            kernel_annotations(t, &["kiln_call"]);
        }
    }
}

/// Emits the global thread index `%tid` and the grid size `%grid` (NVPTX).
fn thread_index(t: &mut Text) {
    for (v, s) in [
        ("%t32", "tid.x"),
        ("%b32", "ctaid.x"),
        ("%bd32", "ntid.x"),
        ("%g32", "nctaid.x"),
    ] {
        t.l(format!("{v} = call i32 @llvm.nvvm.read.ptx.sreg.{s}()"));
    }
    t.l("%t = zext i32 %t32 to i64");
    t.l("%blk = zext i32 %b32 to i64");
    t.l("%bd = zext i32 %bd32 to i64");
    t.l("%gd = zext i32 %g32 to i64");
    t.l("%bt = mul i64 %blk, %bd");
    t.l("%tid = add i64 %bt, %t");
    t.l("%grid = mul i64 %gd, %bd");
}

#[allow(clippy::too_many_arguments)]
fn map_entry(
    t: &mut Text,
    m: &Module,
    unit: &mut Unit,
    kernel: KernelId,
    uniform: u64,
    types: &[ScalarType],
    width: u32,
    flavor: Flavor,
) {
    let k = m.kernel(kernel);
    let count = types.len();
    let ops = Operands {
        types,
        inputs: k.params.len(),
        uniform,
    };
    let _ = writeln!(
        t.out,
        "define internal void @map_thread(i64 %tid, i64 %nth, {}) alwaysinline {{",
        operand_params(count)
    );
    t.label("entry");
    let uni = preamble(t, &ops, width);
    group_loop(t, &ops, width, &uni, &mut |t, ins, i| {
        t.call_checked(m, unit, kernel, &ins, "%err", i)
    });
    t.l("ret void");
    t.out.push_str("}\n\n");
    match flavor {
        Flavor::Host => {
            t.out
                .push_str("define void @host_map(i64 %tid, i64 %nth, ptr %a) {\nentry:\n");
            unpack_operands(t, count);
            t.l(format!(
                "call void @map_thread(i64 %tid, i64 %nth, {})",
                operand_params(count)
            ));
            t.l("ret void");
            t.out.push_str("}\n");
        }
        Flavor::Nvptx => {
            let _ = writeln!(t.out, "define void @kiln_map({}) {{", operand_params(count));
            t.label("entry");
            thread_index(t);
            t.l(format!(
                "call void @map_thread(i64 %tid, i64 %grid, {})",
                operand_params(count)
            ));
            t.l("ret void");
            t.out.push_str("}\n");
            kernel_annotations(t, &["kiln_map"]);
        }
    }
}

fn reduce_entries(
    t: &mut Text,
    m: &Module,
    unit: &mut Unit,
    map: Option<KernelId>,
    combine: KernelId,
    width: u32,
    flavor: Flavor,
) -> Result<(), BackendError> {
    let ty = m.kernel(combine).results[0];
    let mt = mem_ty(ty);
    let inputs = reduce_inputs(m, map, combine);
    if let Some(f) = map {
        if m.kernel(f).results[..] != [ty] {
            return Err(BackendError(format!(
                "the map `{}` does not give the combine's type {ty}",
                m.kernel(f).name
            )));
        }
    }
    let count = inputs.len();
    let ops = Operands {
        types: &inputs,
        inputs: count,
        uniform: 0,
    };
    let commutative = kiln_ir::commutative_combine(m.kernel(combine)).is_some();
    let mut element = |t: &mut Text, ins: Vec<String>, i: &str| -> Vec<String> {
        let x = match map {
            Some(f) => t.call_checked(m, unit, f, &ins, "%err", i).remove(0),
            None => ins[0].clone(),
        };
        fold(t, m, unit, combine, &x, i);
        Vec::new()
    };

    // Phase 1, per thread: fold this thread's elements into *%accp / *%okp.
    let _ = writeln!(
        t.out,
        "define internal void @reduce_thread(i64 %tid, i64 %nth, {}, ptr %accp, ptr %okp) alwaysinline {{",
        operand_params(count)
    );
    t.label("entry");
    if commutative {
        let uni = preamble(t, &ops, width);
        group_loop(t, &ops, width, &uni, &mut element);
    } else {
        // A contiguous range per thread, in order.
        range_loop(t, &mut |t| {
            let mut ins = Vec::new();
            for (j, &ity) in inputs.iter().enumerate() {
                let off = t.fresh("%off");
                t.l(format!("{off} = mul i64 %i, %s{j}"));
                let a = t.gep(ity, &format!("%p{j}"), &off);
                ins.push(t.load(ity, &a));
            }
            element(t, ins, "%i");
        });
    }
    t.l("ret void");
    t.out.push_str("}\n\n");

    // One step of the block tree: thread t combines slot t + s into slot t.
    let _ = writeln!(t.out, "define internal void @tree_step(i64 %t, i64 %s, i64 %bsize, ptr %vals, ptr %oks, ptr %err) alwaysinline {{");
    t.label("entry");
    t.l("%s2 = shl i64 %s, 1");
    t.l("%mask = sub i64 %s2, 1");
    t.l("%low = and i64 %t, %mask");
    t.l("%lead = icmp eq i64 %low, 0");
    t.l("%u = add i64 %t, %s");
    t.l("%inb = icmp ult i64 %u, %bsize");
    t.l("%go = and i1 %lead, %inb");
    t.l("br i1 %go, label %pair, label %out");
    t.label("pair");
    t.l("%pbo = getelementptr i8, ptr %oks, i64 %u");
    t.l("%bo = load i8, ptr %pbo");
    t.l("%hasb = icmp ne i8 %bo, 0");
    t.l("br i1 %hasb, label %withb, label %out");
    t.label("withb");
    let pb = t.gep(ty, "%vals", "%u");
    let b = t.load(ty, &pb);
    t.l("%accp = getelementptr ".to_string() + mt + ", ptr %vals, i64 %t");
    t.l("%okp = getelementptr i8, ptr %oks, i64 %t");
    // Index 0 stands for "the tree": a failing combine here has no single element.
    fold(t, m, unit, combine, &b, "0");
    t.l("br label %out");
    t.label("out");
    t.l("ret void");
    t.out.push_str("}\n\n");

    // Phase 2, per thread: fold a contiguous range of the block results that are present.
    let _ = writeln!(t.out, "define internal void @fold_partials(i64 %tid, i64 %nth, ptr %vals, ptr %oks, i64 %n, ptr %err, ptr %accp, ptr %okp) alwaysinline {{");
    t.label("entry");
    range_loop(t, &mut |t| {
        t.l("%po = getelementptr i8, ptr %oks, i64 %i");
        t.l("%o = load i8, ptr %po");
        t.l("%present = icmp ne i8 %o, 0");
        t.l("br i1 %present, label %take, label %next");
        t.label("take");
        let pv = t.gep(ty, "%vals", "%i");
        let v = t.load(ty, &pv);
        fold(t, m, unit, combine, &v, "0");
        t.l("br label %next");
        t.label("next");
    });
    t.l("ret void");
    t.out.push_str("}\n\n");

    // The end: `*result = *result ⊕ total` when there is a total.
    let _ = writeln!(t.out, "define internal void @finish(ptr %accp, ptr %totalp, ptr %totalok, ptr %err) alwaysinline {{");
    t.label("entry");
    t.l("%tok = load i8, ptr %totalok");
    t.l("%has = icmp ne i8 %tok, 0");
    t.l("br i1 %has, label %comb, label %out");
    t.label("comb");
    t.l("%okp = alloca i8");
    t.l("store i8 1, ptr %okp");
    let total = t.load(ty, "%totalp");
    fold(t, m, unit, combine, &total, "0");
    t.l("br label %out");
    t.label("out");
    t.l("ret void");
    t.out.push_str("}\n\n");

    match flavor {
        Flavor::Host => {
            let _ = writeln!(t.out, "define void @host_reduce_thread(i64 %tid, i64 %nth, ptr %a, ptr %accp, ptr %okp) {{");
            t.label("entry");
            unpack_operands(t, count);
            t.l(format!(
                "call void @reduce_thread(i64 %tid, i64 %nth, {}, ptr %accp, ptr %okp)",
                operand_params(count)
            ));
            t.l("ret void");
            t.out.push_str("}\n");
            t.out.push_str("define void @host_tree_step(i64 %t, i64 %s, i64 %bsize, ptr %vals, ptr %oks, ptr %err) {\nentry:\n  call void @tree_step(i64 %t, i64 %s, i64 %bsize, ptr %vals, ptr %oks, ptr %err)\n  ret void\n}\n");
            t.out.push_str("define void @host_fold_partials(i64 %tid, i64 %nth, ptr %vals, ptr %oks, i64 %n, ptr %err, ptr %accp, ptr %okp) {\nentry:\n  call void @fold_partials(i64 %tid, i64 %nth, ptr %vals, ptr %oks, i64 %n, ptr %err, ptr %accp, ptr %okp)\n  ret void\n}\n");
            t.out.push_str("define void @host_finish(ptr %accp, ptr %totalp, ptr %totalok, ptr %err) {\nentry:\n  call void @finish(ptr %accp, ptr %totalp, ptr %totalok, ptr %err)\n  ret void\n}\n");
        }
        Flavor::Nvptx => {
            let align = mem_size(ty).max(1);
            let _ = writeln!(
                t.out,
                "@sh_vals = internal addrspace(3) global [{BLOCK} x {mt}] poison, align {align}"
            );
            let _ = writeln!(
                t.out,
                "@sh_oks = internal addrspace(3) global [{BLOCK} x i8] poison\n"
            );
            // The block tree over shared memory, then thread 0 has the block's result.
            let tree = |t: &mut Text| {
                t.l("%shv = addrspacecast ptr addrspace(3) @sh_vals to ptr");
                t.l("%sho = addrspacecast ptr addrspace(3) @sh_oks to ptr");
                let pv = t.gep(ty, "%shv", "%t");
                let v = t.load(ty, "%accp");
                t.store(ty, &v, &pv);
                t.l("%myok = load i8, ptr %okp");
                t.l("%pso = getelementptr i8, ptr %sho, i64 %t");
                t.l("store i8 %myok, ptr %pso");
                let mut s = 1;
                while s < BLOCK {
                    t.l("call void @llvm.nvvm.barrier0()");
                    t.l(format!("call void @tree_step(i64 %t, i64 {s}, i64 {BLOCK}, ptr %shv, ptr %sho, ptr %err)"));
                    s *= 2;
                }
                t.l("call void @llvm.nvvm.barrier0()");
                t.l("%lead = icmp eq i64 %t, 0");
            };
            let _ = writeln!(
                t.out,
                "define void @kiln_reduce({}, i64 %lanes, ptr %pvals, ptr %poks) {{",
                operand_params(count)
            );
            t.label("entry");
            thread_index(t);
            t.l(format!("%accp = alloca {mt}"));
            t.l("%okp = alloca i8");
            t.l("store i8 0, ptr %okp");
            t.l("%all = icmp eq i64 %lanes, 0");
            t.l("%nth = select i1 %all, i64 %grid, i64 %lanes");
            t.l("%active = icmp ult i64 %tid, %nth");
            t.l("br i1 %active, label %work, label %tree");
            t.label("work");
            t.l(format!(
                "call void @reduce_thread(i64 %tid, i64 %nth, {}, ptr %accp, ptr %okp)",
                operand_params(count)
            ));
            t.l("br label %tree");
            t.label("tree");
            tree(t);
            t.l("br i1 %lead, label %write, label %out");
            t.label("write");
            let v = t.load(ty, "%shv");
            let pv = t.gep(ty, "%pvals", "%blk");
            t.store(ty, &v, &pv);
            t.l("%bok = load i8, ptr %sho");
            t.l("%pbo = getelementptr i8, ptr %poks, i64 %blk");
            t.l("store i8 %bok, ptr %pbo");
            t.l("br label %out");
            t.label("out");
            t.l("ret void");
            t.out.push_str("}\n\n");

            let _ = writeln!(t.out, "define void @kiln_reduce_final(ptr %pvals, ptr %poks, i64 %count, ptr %result, ptr %err) {{");
            t.label("entry");
            t.l("%t32 = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()");
            t.l("%t = zext i32 %t32 to i64");
            t.l(format!("%accp = alloca {mt}"));
            t.l("%okp = alloca i8");
            t.l("store i8 0, ptr %okp");
            t.l(format!("call void @fold_partials(i64 %t, i64 {BLOCK}, ptr %pvals, ptr %poks, i64 %count, ptr %err, ptr %accp, ptr %okp)"));
            tree(t);
            t.l("br i1 %lead, label %write, label %out");
            t.label("write");
            t.l("call void @finish(ptr %result, ptr %shv, ptr %sho, ptr %err)");
            t.l("br label %out");
            t.label("out");
            t.l("ret void");
            t.out.push_str("}\n\n");
            kernel_annotations(t, &["kiln_reduce", "kiln_reduce_final"]);
        }
    }
    Ok(())
}
