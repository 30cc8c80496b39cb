//! Diagnostic construction. All user-facing errors of the front end are codespan-reporting
//! diagnostics with a primary label at the offending span, optional secondary labels, and
//! `help:` notes; `kiln::Error` renders them.

use codespan_reporting::diagnostic::{Diagnostic, Label};
use kiln_syntax::{FileId, Span};

/// A front-end diagnostic.
pub type Diag = Diagnostic<FileId>;

/// An error with a primary label.
pub fn error(
    file: FileId,
    span: Span,
    message: impl Into<String>,
    label: impl Into<String>,
) -> Diag {
    Diagnostic::error()
        .with_message(message.into())
        .with_labels(vec![
            Label::primary(file, span.range()).with_message(label.into())
        ])
}

/// Adds a secondary label.
pub fn also(mut d: Diag, file: FileId, span: Span, label: impl Into<String>) -> Diag {
    d.labels
        .push(Label::secondary(file, span.range()).with_message(label.into()));
    d
}

/// Adds a `help:` note.
pub fn help(mut d: Diag, text: impl Into<String>) -> Diag {
    d.notes.push(format!("help: {}", text.into()));
    d
}

/// Adds a `note:`.
pub fn note(mut d: Diag, text: impl Into<String>) -> Diag {
    d.notes.push(format!("note: {}", text.into()));
    d
}

/// The closest of `candidates` to `name`, if it is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::osa_distance(name, c), c))
        .filter(|&(d, _)| d <= limit)
        .min()
        .map(|(_, c)| c.to_string())
}

/// The primary span's start, for sorting diagnostics into source order.
pub fn sort_key(d: &Diag) -> usize {
    d.labels.first().map_or(usize::MAX, |l| l.range.start)
}
