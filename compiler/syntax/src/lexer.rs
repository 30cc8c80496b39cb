//! The lexer: logos turns source text into [`Token`]s with byte offsets.
//!
//! Design notes:
//! - Comments and whitespace are skipped here. Doc comments (`///`) are not tokens: the parser
//!   attaches them to items afterwards by looking at the lines just above each item
//!   ([`crate::doc_comment_before`]), so they can never cause a syntax error.
//! - Numeric literals are kept as text; the parser decodes them (and reports malformed ones)
//!   so that every literal error carries the literal's own span.
//! - A character that starts no token, or an unterminated string or block comment, becomes a
//!   [`SyntaxError`]. The [`Lexer`] iterator records the error and skips the bad text, so one stray
//!   character does not hide the rest of the file's errors.

use logos::Logos;

use crate::span::Span;

/// One token. Literal and identifier tokens borrow their text from the source.
#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq)]
#[logos(skip r"[ \t\r\n\f\u{FEFF}]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
#[logos(skip r"/\*([^*]|\*+[^*/])*\*+/")]
pub enum Token<'s> {
    // Keywords.
    #[token("fn")]
    Fn,
    #[token("ufunc")]
    Ufunc,
    #[token("reduce")]
    Reduce,
    #[token("gufunc")]
    Gufunc,
    #[token("kernel")]
    Kernel,
    #[token("const")]
    Const,
    #[token("let")]
    Let,
    #[token("var")]
    Var,
    #[token("if")]
    If,
    #[token("else")]
    Else,
    #[token("while")]
    While,
    #[token("for")]
    For,
    #[token("in")]
    In,
    #[token("over")]
    Over,
    #[token("break")]
    Break,
    #[token("continue")]
    Continue,
    #[token("return")]
    Return,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("as")]
    As,
    #[token("identity")]
    Identity,
    #[token("out")]
    Out,

    // Literals and names.
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident(&'s str),
    #[regex(r"[0-9][0-9_]*(i32|i64|u32|u64|f32|f64)?")]
    #[regex(r"0x[0-9a-fA-F_]+(i32|i64|u32|u64)?")]
    #[regex(r"0b[01_]+(i32|i64|u32|u64)?")]
    Int(&'s str),
    #[regex(r"[0-9][0-9_]*\.[0-9][0-9_]*([eE][+-]?[0-9][0-9_]*)?(f32|f64)?")]
    #[regex(r"[0-9][0-9_]*[eE][+-]?[0-9][0-9_]*(f32|f64)?")]
    Float(&'s str),
    #[regex(r#""([^"\\\n]|\\.)*""#)]
    Str(&'s str),

    // Errors the lexer reports with a precise message.
    #[regex(r"/\*([^*]|\*+[^*/])*\**", priority = 1)]
    UnterminatedComment,
    #[regex(r#""([^"\\\n]|\\.)*"#, priority = 1)]
    UnterminatedString,
    #[regex(r"\.[0-9][0-9_]*")]
    LeadingDotFloat,

    // Punctuation.
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    #[token("->")]
    Arrow,
    #[token("..")]
    DotDot,
    #[token("..=")]
    DotDotEq,
    #[token("=")]
    Eq,
    #[token("+=")]
    PlusEq,
    #[token("-=")]
    MinusEq,
    #[token("*=")]
    StarEq,
    #[token("/=")]
    SlashEq,
    #[token("%=")]
    PercentEq,
    #[token("&=")]
    AmpEq,
    #[token("|=")]
    PipeEq,
    #[token("^=")]
    CaretEq,
    #[token("<<=")]
    ShlEq,
    #[token(">>=")]
    ShrEq,
    #[token("||")]
    OrOr,
    #[token("&&")]
    AndAnd,
    #[token("==")]
    EqEq,
    #[token("!=")]
    Ne,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("|")]
    Pipe,
    #[token("^")]
    Caret,
    #[token("&")]
    Amp,
    #[token("<<")]
    Shl,
    #[token(">>")]
    Shr,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token("!")]
    Bang,
}

impl std::fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Ident(s) | Token::Int(s) | Token::Float(s) | Token::Str(s) => {
                write!(f, "`{s}`")
            }
            Token::UnterminatedComment => f.write_str("unterminated comment"),
            Token::UnterminatedString => f.write_str("unterminated string"),
            Token::LeadingDotFloat => f.write_str("float without leading digit"),
            other => write!(f, "`{}`", token_text(other)),
        }
    }
}

/// The fixed text of a keyword or punctuation token (empty for the others).
fn token_text(t: &Token<'_>) -> &'static str {
    use Token::*;
    match t {
        Fn => "fn",
        Ufunc => "ufunc",
        Reduce => "reduce",
        Gufunc => "gufunc",
        Kernel => "kernel",
        Const => "const",
        Let => "let",
        Var => "var",
        If => "if",
        Else => "else",
        While => "while",
        For => "for",
        In => "in",
        Over => "over",
        Break => "break",
        Continue => "continue",
        Return => "return",
        True => "true",
        False => "false",
        As => "as",
        Identity => "identity",
        Out => "out",
        LParen => "(",
        RParen => ")",
        LBrace => "{",
        RBrace => "}",
        LBracket => "[",
        RBracket => "]",
        Comma => ",",
        Semi => ";",
        Colon => ":",
        Arrow => "->",
        DotDot => "..",
        DotDotEq => "..=",
        Eq => "=",
        PlusEq => "+=",
        MinusEq => "-=",
        StarEq => "*=",
        SlashEq => "/=",
        PercentEq => "%=",
        AmpEq => "&=",
        PipeEq => "|=",
        CaretEq => "^=",
        ShlEq => "<<=",
        ShrEq => ">>=",
        OrOr => "||",
        AndAnd => "&&",
        EqEq => "==",
        Ne => "!=",
        Lt => "<",
        Le => "<=",
        Gt => ">",
        Ge => ">=",
        Pipe => "|",
        Caret => "^",
        Amp => "&",
        Shl => "<<",
        Shr => ">>",
        Plus => "+",
        Minus => "-",
        Star => "*",
        Slash => "/",
        Percent => "%",
        Bang => "!",
        Ident(_) | Int(_) | Float(_) | Str(_) | UnterminatedComment | UnterminatedString
        | LeadingDotFloat => "",
    }
}

/// A syntax error with its own message: text that starts no token, or a malformed literal
/// or construct found by a parser action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where.
    pub span: Span,
    /// What, in words.
    pub message: String,
}

/// Iterator of `(start, token, end)` triples for the parser. Lexical errors are pushed to
/// `errors` and skipped, so parsing goes on and reports what follows.
pub struct Lexer<'s, 'e> {
    inner: logos::SpannedIter<'s, Token<'s>>,
    src: &'s str,
    errors: &'e mut Vec<SyntaxError>,
}

impl<'s, 'e> Lexer<'s, 'e> {
    /// Lexes `src`, recording lexical errors in `errors`.
    pub fn new(src: &'s str, errors: &'e mut Vec<SyntaxError>) -> Self {
        Lexer {
            inner: Token::lexer(src).spanned(),
            src,
            errors,
        }
    }
}

/// A spanned token as lalrpop consumes it.
pub type Spanned<'s> = (usize, Token<'s>, usize);

impl<'s> Iterator for Lexer<'s, '_> {
    type Item = Result<Spanned<'s>, SyntaxError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (tok, range) = self.inner.next()?;
            let span = Span::new(range.start, range.end);
            match tok {
                Ok(Token::UnterminatedComment) => self.errors.push(SyntaxError {
                    span: Span::new(range.start, range.start + 2),
                    message: "unterminated block comment: `/*` has no matching `*/`".into(),
                }),
                Ok(Token::UnterminatedString) => self.errors.push(SyntaxError {
                    span,
                    message: "unterminated string literal".into(),
                }),
                Ok(Token::LeadingDotFloat) => self.errors.push(SyntaxError {
                    span,
                    message: format!(
                        "a float literal needs a digit before `.`: write `0{}`",
                        &self.src[range.clone()]
                    ),
                }),
                Ok(tok) => return Some(Ok((range.start, tok, range.end))),
                Err(()) => {
                    let bad = self.src[range.clone()].chars().next().unwrap_or(' ');
                    self.errors.push(SyntaxError {
                        span,
                        message: format!("unexpected character `{}`", bad.escape_debug()),
                    });
                }
            }
            // Too many errors means this is not Kiln source at all; stop early rather than
            // report a million of them.
            if self.errors.len() >= crate::MAX_ERRORS {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(src: &str) -> (Vec<Token<'_>>, Vec<SyntaxError>) {
        let mut errors = Vec::new();
        let toks = Lexer::new(src, &mut errors)
            .map(|t| t.expect("lexer yields no Err").1)
            .collect();
        (toks, errors)
    }

    #[test]
    fn literals() {
        let (t, e) = lex("42 1_000 0xff 0b1010 7u32 3f32 1.0 2.5e-3 1e6 1.5f32 1..2 0..=n");
        assert!(e.is_empty());
        use Token::*;
        assert_eq!(
            t,
            vec![
                Int("42"),
                Int("1_000"),
                Int("0xff"),
                Int("0b1010"),
                Int("7u32"),
                Int("3f32"),
                Float("1.0"),
                Float("2.5e-3"),
                Float("1e6"),
                Float("1.5f32"),
                Int("1"),
                DotDot,
                Int("2"),
                Int("0"),
                DotDotEq,
                Ident("n"),
            ]
        );
    }

    #[test]
    fn comments_and_errors() {
        let (t, e) = lex("a /* b */ // c\n @ d /* open");
        assert_eq!(t, vec![Token::Ident("a"), Token::Ident("d")]);
        assert_eq!(e.len(), 2);
        assert!(e[0].message.contains('@'));
        assert!(e[1].message.contains("unterminated"));
    }
}
