//! The expression language of audiences and segments.
//!
//! Stages, each its own type: text → [`ast::Expr`] ([`syntax::parse`]) → [`check::TExpr`] (names resolved,
//! types checked, literals folded; [`check::check_condition`]) → ops in a [`program::Program`] arena
//! ([`program::Program::add`]) → evaluated by [`program::Evaluator`]. [`reference`](mod@reference) is a naive evaluator of
//! the typed tree that property tests compare the compiled one against.
//!
//! Missing data: any comparison involving a missing value is false — including `!=` — and `!` negates the
//! boolean result, so `!(profile.tier == "gold")` is true for a visitor without a tier. `exists(x)` tests
//! presence.

pub mod ast;
pub mod check;
pub mod program;
pub mod reference;
pub mod syntax;
