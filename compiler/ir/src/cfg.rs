//! Control-flow facts computed on demand: successors, reverse post-order, dominators.
//!
//! Callers must only pass verified handles (or handles checked by the verifier's first
//! phase): these functions index arenas directly.

use std::collections::HashMap;

use crate::entities::Block;
use crate::kernel::Kernel;

/// Successor blocks of `b` (empty if `b` has no terminator).
pub fn successors(k: &Kernel, b: Block) -> Vec<Block> {
    match k.terminator(b) {
        Some(t) => k
            .inst(t)
            .kind
            .successors()
            .iter()
            .map(|c| c.block)
            .collect(),
        None => Vec::new(),
    }
}

/// Blocks reachable from the entry, in reverse post-order (the entry first).
pub fn reverse_post_order(k: &Kernel) -> Vec<Block> {
    let mut visited = vec![false; k.blocks.len()];
    let mut post = Vec::new();
    // Iterative DFS: (block, next successor index).
    let entry = k.entry();
    let mut stack = vec![(entry, successors(k, entry), 0usize)];
    visited[entry.index()] = true;
    while let Some((b, succs, i)) = stack.last_mut() {
        if let Some(&s) = succs.get(*i) {
            *i += 1;
            if !visited[s.index()] {
                visited[s.index()] = true;
                let ss = successors(k, s);
                stack.push((s, ss, 0));
            }
        } else {
            post.push(*b);
            stack.pop();
        }
    }
    post.reverse();
    post
}

/// Immediate dominators of the reachable blocks (Cooper, Harvey and Kennedy's iterative
/// algorithm). The entry maps to itself; unreachable blocks are absent.
///
/// Dominance queries are O(1): the dominator tree is numbered by a depth-first walk, and `a`
/// dominates `b` exactly when `b`'s interval lies inside `a`'s.
pub struct Dominators {
    idom: HashMap<Block, Block>,
    rpo_index: HashMap<Block, usize>,
    /// (pre-order, post-order) number of each reachable block in the dominator tree.
    interval: HashMap<Block, (usize, usize)>,
}

impl Dominators {
    /// Computes the dominator tree of `k`.
    pub fn compute(k: &Kernel) -> Dominators {
        let rpo = reverse_post_order(k);
        let rpo_index: HashMap<Block, usize> =
            rpo.iter().enumerate().map(|(i, &b)| (b, i)).collect();
        let mut preds: HashMap<Block, Vec<Block>> = HashMap::new();
        for &b in &rpo {
            for s in successors(k, b) {
                preds.entry(s).or_default().push(b);
            }
        }
        let mut idom: HashMap<Block, Block> = HashMap::new();
        let entry = k.entry();
        idom.insert(entry, entry);
        let mut changed = true;
        while changed {
            changed = false;
            for &b in rpo.iter().skip(1) {
                let mut new_idom: Option<Block> = None;
                for &p in preds.get(&b).map(Vec::as_slice).unwrap_or(&[]) {
                    if !idom.contains_key(&p) {
                        continue;
                    }
                    new_idom = Some(match new_idom {
                        None => p,
                        Some(cur) => intersect(&idom, &rpo_index, p, cur),
                    });
                }
                if let Some(n) = new_idom {
                    if idom.get(&b) != Some(&n) {
                        idom.insert(b, n);
                        changed = true;
                    }
                }
            }
        }
        // Number the dominator tree (iteratively: it can be as deep as the CFG is long).
        let mut children: HashMap<Block, Vec<Block>> = HashMap::new();
        for &b in &rpo {
            if b != entry {
                children.entry(idom[&b]).or_default().push(b);
            }
        }
        let mut interval = HashMap::new();
        let mut counter = 0;
        let mut stack = vec![(entry, false)];
        let mut pre = HashMap::new();
        while let Some((b, done)) = stack.pop() {
            if done {
                interval.insert(b, (pre[&b], counter));
                counter += 1;
                continue;
            }
            pre.insert(b, counter);
            counter += 1;
            stack.push((b, true));
            for &c in children.get(&b).map(Vec::as_slice).unwrap_or(&[]) {
                stack.push((c, false));
            }
        }
        Dominators {
            idom,
            rpo_index,
            interval,
        }
    }

    /// Whether `b` is reachable from the entry.
    pub fn is_reachable(&self, b: Block) -> bool {
        self.idom.contains_key(&b)
    }

    /// Whether `a` dominates `b` (both reachable; every block dominates itself).
    pub fn dominates(&self, a: Block, b: Block) -> bool {
        match (self.interval.get(&a), self.interval.get(&b)) {
            (Some(&(a_pre, a_post)), Some(&(b_pre, b_post))) => a_pre <= b_pre && b_post <= a_post,
            _ => false,
        }
    }

    /// Position of a reachable block in reverse post-order.
    pub fn rpo_index(&self, b: Block) -> Option<usize> {
        self.rpo_index.get(&b).copied()
    }
}

fn intersect(
    idom: &HashMap<Block, Block>,
    order: &HashMap<Block, usize>,
    mut a: Block,
    mut b: Block,
) -> Block {
    while a != b {
        while order[&a] > order[&b] {
            a = idom[&a];
        }
        while order[&b] > order[&a] {
            b = idom[&b];
        }
    }
    a
}

/// Unlinks blocks that cannot be reached from the entry. Returns whether any were removed.
pub fn remove_unreachable_blocks(k: &mut Kernel) -> bool {
    let reachable: std::collections::HashSet<Block> = reverse_post_order(k).into_iter().collect();
    let before = k.layout.len();
    k.layout.retain(|b| reachable.contains(b));
    before != k.layout.len()
}
