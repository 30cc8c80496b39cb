//! Byte spans into one source file.
//!
//! A [`Span`] is a half-open byte range `start..end` of the file being compiled. Spans are
//! `u32` pairs: sources are limited to 4 GiB, far above the 10 MB the fuzzer exercises.
//! Which file a span belongs to is carried by the caller (a compilation works on one file);
//! diagnostics attach the [`FileId`] when they are built.

/// Identifies a source in a [`codespan_reporting::files::SimpleFiles`] database.
pub type FileId = usize;

/// A half-open byte range of a source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// The span moved `by` bytes to the right (for text parsed out of a larger file).
    pub fn shifted(self, by: usize) -> Span {
        Span {
            start: self.start + by as u32,
            end: self.end + by as u32,
        }
    }

    /// As a `Range<usize>`, the form codespan-reporting takes.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// A 1-based line and column, as printed in diagnostics and runtime errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LineCol {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub col: u32,
}

impl LineCol {
    /// The line and column of byte `offset` in `src` (clamped to the text).
    pub fn of(src: &str, offset: usize) -> LineCol {
        let mut offset = offset.min(src.len());
        while !src.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &src[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = src[line_start..offset].chars().count() + 1;
        LineCol {
            line: line as u32,
            col: col as u32,
        }
    }
}

impl std::fmt::Display for LineCol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}
