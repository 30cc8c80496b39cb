//! Kernels (IR functions) and modules.

use crate::entities::{Block, Inst, KernelId, Value};
use crate::inst::InstKind;
use crate::types::{Scalar, ScalarType};

/// A 1-based source line and column, attached to instructions that can fail at run time so
/// that the error names where the kernel was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SourceLoc {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
    /// Length in bytes of the source text of the operation (for underlining it).
    pub len: u32,
}

impl std::fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// What a kernel was lowered from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// A `fn` helper.
    Fn,
    /// A `ufunc` (one element per call).
    Ufunc,
    /// A `reduce` combine (two operands, one result).
    Reduce,
    /// The identity of a `reduce`, as a kernel with no parameters.
    Identity,
    /// A `const`'s value, as a kernel with no parameters.
    Const,
    /// A script expression evaluated by `kiln run`, the REPL or the corpus harness.
    Thunk,
    /// A function of the math library (`kernels/math`), imported into the module. Pure and
    /// total (no runtime errors). The optimiser does not inline it into other kernels, so a
    /// back end can compile it once per process and share it between modules.
    Library,
}

impl KernelKind {
    /// The keyword in IR text.
    pub fn keyword(self) -> &'static str {
        match self {
            KernelKind::Fn => "fn",
            KernelKind::Ufunc => "ufunc",
            KernelKind::Reduce => "reduce",
            KernelKind::Identity => "identity",
            KernelKind::Const => "const",
            KernelKind::Thunk => "thunk",
            KernelKind::Library => "library",
        }
    }
}

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDef {
    /// Parameter `n` of a block.
    Param(Block, u32),
    /// Result `n` of an instruction.
    Result(Inst, u32),
}

/// A value's type and definition.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueData {
    /// Its type.
    pub ty: ScalarType,
    /// Its definition.
    pub def: ValueDef,
}

/// An instruction and its results.
#[derive(Clone, Debug, PartialEq)]
pub struct InstData {
    /// What it does.
    pub kind: InstKind,
    /// Its results (0 for terminators and asserts, several for calls).
    pub results: Vec<Value>,
}

/// A block: parameters (SSA phis) and instructions, the last of which is its terminator.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlockData {
    /// Parameters, bound by each jump into the block.
    pub params: Vec<Value>,
    /// Instructions in order.
    pub insts: Vec<Inst>,
}

/// One IR function: a `fn`, `ufunc`, reduce combine or identity, or a script thunk, with its
/// generic parameters already substituted (the name says which specialisation it is).
///
/// Invariants (checked by [`crate::verify()`]): the entry block's parameters have the kernel's
/// parameter types and no jump targets it; every block in `layout` ends with exactly one
/// terminator; every use is dominated by its definition. Arenas only grow: passes unlink
/// blocks from `layout` and instructions from their block, and the printer numbers what is
/// still linked.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// Name, with type arguments for a specialisation: `axpy<f32>`.
    pub name: String,
    /// Origin.
    pub kind: KernelKind,
    /// Parameter types.
    pub params: Vec<ScalarType>,
    /// Result types (several for a tuple result, none for a unit thunk).
    pub results: Vec<ScalarType>,
    /// Block arena.
    pub blocks: Vec<BlockData>,
    /// Instruction arena.
    pub insts: Vec<InstData>,
    /// Value arena.
    pub values: Vec<ValueData>,
    /// Source locations of instructions (side table, indexed by [`Inst`]); `None` where no
    /// location is useful.
    pub locs: Vec<Option<SourceLoc>>,
    /// Block order; `layout[0]` is the entry block.
    pub layout: Vec<Block>,
}

impl Kernel {
    /// An empty kernel with an entry block whose parameters are the kernel's parameters.
    pub fn new(
        name: impl Into<String>,
        kind: KernelKind,
        params: Vec<ScalarType>,
        results: Vec<ScalarType>,
    ) -> Kernel {
        let mut k = Kernel {
            name: name.into(),
            kind,
            params: params.clone(),
            results,
            blocks: Vec::new(),
            insts: Vec::new(),
            values: Vec::new(),
            locs: Vec::new(),
            layout: Vec::new(),
        };
        let entry = k.create_block();
        for ty in params {
            k.append_block_param(entry, ty);
        }
        k
    }

    /// The entry block.
    pub fn entry(&self) -> Block {
        self.layout[0]
    }

    /// A new empty block, appended to the layout.
    pub fn create_block(&mut self) -> Block {
        let b = Block::new(self.blocks.len());
        self.blocks.push(BlockData::default());
        self.layout.push(b);
        b
    }

    /// Adds a parameter of type `ty` to `block`.
    pub fn append_block_param(&mut self, block: Block, ty: ScalarType) -> Value {
        let n = self.blocks[block.index()].params.len() as u32;
        let v = Value::new(self.values.len());
        self.values.push(ValueData {
            ty,
            def: ValueDef::Param(block, n),
        });
        self.blocks[block.index()].params.push(v);
        v
    }

    /// Creates an instruction with results of types `result_types`, unlinked.
    pub fn create_inst(
        &mut self,
        kind: InstKind,
        result_types: &[ScalarType],
        loc: Option<SourceLoc>,
    ) -> Inst {
        let inst = Inst::new(self.insts.len());
        let results = result_types
            .iter()
            .enumerate()
            .map(|(i, &ty)| {
                let v = Value::new(self.values.len());
                self.values.push(ValueData {
                    ty,
                    def: ValueDef::Result(inst, i as u32),
                });
                v
            })
            .collect();
        self.insts.push(InstData { kind, results });
        self.locs.push(loc);
        inst
    }

    /// Creates an instruction and appends it to `block`.
    pub fn append_inst(
        &mut self,
        block: Block,
        kind: InstKind,
        result_types: &[ScalarType],
        loc: Option<SourceLoc>,
    ) -> Inst {
        let inst = self.create_inst(kind, result_types, loc);
        self.blocks[block.index()].insts.push(inst);
        inst
    }

    /// The results, if the kernel only returns constants (one block: constants, then a
    /// `return` of them). What a script statement like `let x = 5;` optimises to: running
    /// it needs no code generation.
    pub fn constant_results(&self) -> Option<Vec<Scalar>> {
        let [entry] = self.layout.as_slice() else {
            return None;
        };
        let mut known: Vec<(Value, Scalar)> = Vec::new();
        for &inst in &self.block(*entry).insts {
            let data = self.inst(inst);
            match &data.kind {
                InstKind::Const(c) => known.push((data.results[0], *c)),
                InstKind::Return(vals) => {
                    return vals
                        .iter()
                        .map(|v| known.iter().find(|(k, _)| k == v).map(|(_, c)| *c))
                        .collect();
                }
                _ => return None,
            }
        }
        None
    }

    /// The type of `v`.
    pub fn value_type(&self, v: Value) -> ScalarType {
        self.values[v.index()].ty
    }

    /// The instruction data of `inst`.
    pub fn inst(&self, inst: Inst) -> &InstData {
        &self.insts[inst.index()]
    }

    /// The block data of `block`.
    pub fn block(&self, block: Block) -> &BlockData {
        &self.blocks[block.index()]
    }

    /// The last instruction of `block`, if it is a terminator.
    pub fn terminator(&self, block: Block) -> Option<Inst> {
        let last = *self.blocks[block.index()].insts.last()?;
        self.insts[last.index()]
            .kind
            .is_terminator()
            .then_some(last)
    }

    /// Number of linked instructions (a size measure for tests and inlining limits).
    pub fn inst_count(&self) -> usize {
        self.layout
            .iter()
            .map(|b| self.blocks[b.index()].insts.len())
            .sum()
    }
}

/// A compilation unit: kernels that may call each other.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Module {
    /// Kernels, indexed by [`KernelId`].
    pub kernels: Vec<Kernel>,
}

impl Module {
    /// Adds a kernel.
    pub fn push(&mut self, k: Kernel) -> KernelId {
        self.kernels.push(k);
        KernelId::new(self.kernels.len() - 1)
    }

    /// The kernel `id`.
    pub fn kernel(&self, id: KernelId) -> &Kernel {
        &self.kernels[id.index()]
    }

    /// Finds a kernel by (specialised) name.
    pub fn find(&self, name: &str) -> Option<KernelId> {
        self.kernels
            .iter()
            .position(|k| k.name == name)
            .map(KernelId::new)
    }
}
