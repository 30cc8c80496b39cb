//! Entity handles: `u32` newtypes indexing a [`crate::Kernel`]'s arenas or a
//! [`crate::Module`]'s kernels. Handles are only meaningful for the arena that made them;
//! the verifier checks them before anything indexes with them.

use std::fmt;

macro_rules! entity {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// The arena index.
            pub fn index(self) -> usize {
                self.0 as usize
            }

            /// The handle for arena index `i`.
            pub fn new(i: usize) -> Self {
                $name(u32::try_from(i).expect("fewer than 2^32 entities"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

entity!(
    /// An SSA value: a block parameter or an instruction result.
    Value,
    "v"
);
entity!(
    /// A basic block.
    Block,
    "block"
);
entity!(
    /// An instruction.
    Inst,
    "inst"
);
entity!(
    /// A kernel of a [`crate::Module`].
    KernelId,
    "kernel"
);
