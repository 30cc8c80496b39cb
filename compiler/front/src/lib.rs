//! `kiln-front`: the checker and the lowering from the AST to Kiln IR.
//!
//! [`check()`](check::check) resolves names and types (producing the typed AST of [`typed`]) and reports
//! every user error as a codespan-reporting diagnostic; [`Lowerer`] turns checked items into
//! IR kernels, one per specialisation. Everything a user can get wrong is reported here:
//! the IR verifier only ever catches compiler bugs.

pub mod builtins;
pub mod check;
pub mod consts;
pub mod diag;
pub mod lower;
pub mod mathlib;
pub mod typed;
pub mod types;

use std::collections::HashMap;

use kiln_syntax::FileId;

pub use check::check;
pub use diag::Diag;
pub use lower::{instance_name, Lowerer};
pub use typed::{CheckedConst, CheckedItem, ConstId, ItemId, LocalId, Script};
pub use types::{Class, Ty};

/// A checked source file: its items, consts and script, ready to be lowered.
#[derive(Clone, Debug)]
pub struct Program {
    /// The file's id in the caller's file database.
    pub file: FileId,
    /// The source text (for source locations in runtime errors).
    pub src: String,
    /// `fn`, `ufunc` and `reduce` items (and unsupported M2 items), by [`ItemId`].
    pub items: Vec<CheckedItem>,
    /// Consts, by [`ConstId`].
    pub consts: Vec<CheckedConst>,
    /// Top-level statements.
    pub script: Script,
    /// Items by name.
    pub item_ids: HashMap<String, ItemId>,
    /// Consts by name.
    pub const_ids: HashMap<String, ConstId>,
    /// Byte offsets where lines start.
    pub line_starts: Vec<usize>,
    /// The consts in evaluation order: each after every const it depends on, directly or
    /// through the items its initialiser calls.
    pub const_order: Vec<ConstId>,
    /// Each const's value, computed once, on first use, by [`consts::evaluate`].
    pub(crate) const_values: std::sync::OnceLock<consts::Values>,
}

impl Program {
    /// The line and column of byte `offset` of the source (binary search over the line
    /// starts, so lowering a long file stays linear).
    pub fn line_col(&self, offset: usize) -> kiln_syntax::LineCol {
        let offset = offset.min(self.src.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self
            .src
            .get(start..offset)
            .map_or(offset - start, |t| t.chars().count())
            + 1;
        kiln_syntax::LineCol {
            line: line as u32,
            col: col as u32,
        }
    }

    /// The item called `name`.
    pub fn item(&self, name: &str) -> Option<(ItemId, &CheckedItem)> {
        let id = *self.item_ids.get(name)?;
        Some((id, &self.items[id.0 as usize]))
    }

    /// Every specialisation of item `id`: one per combination of its generic parameters'
    /// class members (one empty list for a non-generic item).
    pub fn specialisations(&self, id: ItemId) -> Vec<Vec<kiln_ir::ScalarType>> {
        let item = &self.items[id.0 as usize];
        let mut out = vec![vec![]];
        for (_, class) in &item.generics {
            let mut next = Vec::new();
            for prefix in &out {
                for &t in class.members() {
                    let mut p: Vec<kiln_ir::ScalarType> = prefix.clone();
                    p.push(t);
                    next.push(p);
                }
            }
            out = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_col_agrees_with_a_direct_count() {
        let src = "fn f(x: f64) -> f64 {\n    // ∪ é\n    x\n}\n\nlet y = 1;";
        let (ast, errors) = kiln_syntax::parse(src);
        assert!(errors.is_empty());
        let (program, diags) = crate::check(0, src, &ast);
        assert!(diags.is_empty());
        for (offset, _) in src.char_indices().chain([(src.len(), ' ')]) {
            assert_eq!(
                program.line_col(offset),
                kiln_syntax::LineCol::of(src, offset),
                "offset {offset}"
            );
        }
    }
}
