//! Untyped syntax tree, straight from the parser. Offsets are bytes into the expression text.

/// A name with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset one past the end.
    pub end: usize,
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `!`
    Not,
    /// `-`
    Neg,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `&&`
    And,
    /// `||`
    Or,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `not in`
    NotIn,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::NotIn => "not in",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

/// An expression node.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset one past the end.
    pub end: usize,
}

/// Expression kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// `true` / `false`
    Bool(bool),
    /// `42`, `3.5`
    Num(f64),
    /// `"text"` or `'text'`
    Str(String),
    /// `30d` in milliseconds
    Duration(i64),
    /// `[a, b]`
    List(Vec<Expr>),
    /// `geo.country`: a dotted name
    Path(Vec<Ident>),
    /// `!x`, `-x`
    Unary(UnOp, Box<Expr>),
    /// `a op b`
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `f(args)`
    Call(Ident, Vec<Expr>),
    /// `x.m(args)`
    Method(Box<Expr>, Ident, Vec<Expr>),
    /// `x.name` where `x` is not a plain path (e.g. `….last().at`)
    Member(Box<Expr>, Ident),
}

impl Expr {
    pub(crate) fn binary(op: BinOp, l: Expr, r: Expr) -> Expr {
        let (start, end) = (l.start, r.end);
        Expr {
            kind: ExprKind::Binary(op, Box::new(l), Box::new(r)),
            start,
            end,
        }
    }
}
